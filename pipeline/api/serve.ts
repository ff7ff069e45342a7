import { AgentmeterError } from "../../schemas/errors.ts";
import type { Logger } from "../log.ts";
import { reach } from "../runtime/reach.ts";
import { startBudgetView } from "./budgets.ts";
import type { ServeConfig } from "./config.ts";
import { IngestProducer } from "./ingest-producer.ts";
import { AppOwnership } from "./ownership.ts";
import { buildApi } from "./server.ts";
import { ReadStores } from "./stores.ts";

export interface RunningServer {
  url: string;
  /** Resolves once the server has drained and closed its clients. */
  stopped: Promise<void>;
  stop(): Promise<void>;
}

/**
 * Connects the producer (which creates the topics), starts the budget-state view, opens the stores
 * (apps' owners from the billing config's pins), listens; SIGTERM (or SIGINT) stops taking
 * connections, lets requests in flight finish (their records acknowledged by the broker), flushes the
 * producer and closes the clients. A second signal, or AGENTMETER_API_SHUTDOWN_MS passing, exits at once.
 */
export async function startServer(config: ServeConfig, logger: Logger): Promise<RunningServer> {
  const { pipeline, serve, billing } = config;
  if (serve.keys.length === 0) logger.warn("AGENTMETER_API_KEYS is empty: every /v1 route answers 401");
  const brokers = pipeline.KAFKA_BROKERS.join(",");
  const producer = await reach("Kafka", brokers, () => IngestProducer.connect(pipeline, logger));
  // What is open is closed again when a later step fails, so the command's one line is its last word.
  const opened: { close(): Promise<unknown> }[] = [producer];
  let budgets: Awaited<ReturnType<typeof startBudgetView>>;
  let stores: ReadStores;
  let app: Awaited<ReturnType<typeof buildApi>>;
  let url: string;
  try {
    budgets = await reach("Kafka", brokers, () => startBudgetView(pipeline, logger));
    opened.unshift({ close: () => budgets.stop() });
    stores = ReadStores.open(pipeline, logger);
    opened.unshift(stores);
    const owners = new AppOwnership(billing.apps, stores.layout, serve.AGENTMETER_API_APP_OWNERS);
    app = await buildApi({ pipeline, settings: serve, producer, stores, owners, budgets, billing, logger });
    opened.unshift(app);
    url = await listen(app, serve.AGENTMETER_API_HOST, serve.AGENTMETER_API_PORT);
  } catch (error) {
    for (const client of opened) await client.close().catch(() => undefined);
    throw error;
  }

  let stopping: Promise<void> | undefined;
  let markStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    markStopped = resolve;
  });
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      const deadline = setTimeout(() => {
        logger.error("shutdown took longer than AGENTMETER_API_SHUTDOWN_MS; exiting");
        process.exit(1);
      }, serve.AGENTMETER_API_SHUTDOWN_MS);
      deadline.unref();
      await app.close();
      await producer.close();
      await budgets.stop();
      await stores.close();
      clearTimeout(deadline);
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      logger.info("api stopped");
      markStopped();
    })();
    return stopping;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping !== undefined) process.exit(1);
    logger.info({ signal }, "stopping the api");
    void stop();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  logger.info(
    { url, keys: serve.keys.length, pinned_apps: Object.keys(billing.apps).length },
    "api listening",
  );
  return { url, stopped, stop };
}

/** Why a listen fails that only another AGENTMETER_API_HOST or AGENTMETER_API_PORT can cure. */
const LISTEN_CONFIG_ERRORS = new Set(["EADDRINUSE", "EADDRNOTAVAIL", "EACCES", "ENOTFOUND", "EAI_AGAIN"]);

/** Listens; an address another process holds is the operator's to change, said in one line. */
async function listen(
  app: Awaited<ReturnType<typeof buildApi>>,
  host: string,
  port: number,
): Promise<string> {
  try {
    return await app.listen({ host, port });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined || !LISTEN_CONFIG_ERRORS.has(code)) throw error;
    throw new AgentmeterError(
      "CONFIG_INVALID",
      `config: AGENTMETER_API_HOST=${host} AGENTMETER_API_PORT=${port}: cannot listen there (${code}${
        code === "EADDRINUSE" ? ": another process holds it" : ""
      })`,
      { cause: error },
    );
  }
}
