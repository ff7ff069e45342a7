import fastifySwagger from "@fastify/swagger";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from "fastify-type-provider-zod";
import type { Config } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import type { Logger } from "../log.ts";
import type { BudgetStates } from "./budgets.ts";
import type { ServeSettings } from "./config.ts";
import { answerError, installErrorHandling, MAX_PARAM_LENGTH } from "./error-handler.ts";
import type { IngestProducer } from "./ingest-producer.ts";
import type { AppOwners } from "./ownership.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { ingestRoutes } from "./routes/ingest.ts";
import { readRoutes } from "./routes/reads.ts";
import type { ReadStores } from "./stores.ts";

export interface ApiDependencies {
  pipeline: Config;
  settings: ServeSettings;
  producer: IngestProducer;
  stores: ReadStores;
  /** Which creator an app belongs to (ownership.ts). */
  owners: AppOwners;
  /** The budget-state topic's view (budgets.ts). */
  budgets: BudgetStates;
  /** The processor's billing rules: a usage record the price book cannot price is refused at ingest. */
  billing: BillingConfig;
  logger: Logger;
}

/** The API server, routes registered and ready, not yet listening (tests call inject() or listen()). */
export async function buildApi(deps: ApiDependencies): Promise<FastifyInstance> {
  const app = Fastify({
    // pino's Logger is Fastify's logger; its stricter type only differs in fields Fastify never calls.
    loggerInstance: deps.logger.child({ component: "api" }) as FastifyBaseLogger,
    bodyLimit: deps.settings.AGENTMETER_API_BODY_LIMIT,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    frameworkErrors: answerError,
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandling(app);

  await app.register(fastifySwagger, {
    openapi: {
      info: {
        title: "agentmeter",
        description:
          "Ingest LLM usage records; read balances, usage, earnings and creator statements (docs/api.md).",
        version: "1",
      },
      components: {
        securitySchemes: { apiKey: { type: "http", scheme: "bearer", description: "an agentmeter API key" } },
      },
    },
    transform: jsonSchemaTransform,
  });

  await app.register(ingestRoutes, {
    keys: deps.settings.keys,
    producer: deps.producer,
    maxBatch: deps.settings.AGENTMETER_API_MAX_BATCH,
    maxRecordBytes: deps.pipeline.AGENTMETER_MAX_RECORD_BYTES,
    billing: deps.billing,
  });
  await app.register(readRoutes, {
    keys: deps.settings.keys,
    stores: deps.stores,
    owners: deps.owners,
    budgets: deps.budgets,
  });
  await app.register(dashboardRoutes);
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  app.get("/healthz", { schema: { hide: true } }, async () => ({ ok: true }));
  await app.ready();
  return app;
}
