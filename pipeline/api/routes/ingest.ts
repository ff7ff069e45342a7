import type { FastifyInstance } from "fastify";
import type { FastifyPluginAsyncZod } from "fastify-type-provider-zod";
import {
  apiErrorSchema,
  type IngestResponse,
  ingestBodySchema,
  ingestResponseSchema,
  type RecordResult,
} from "../../../schemas/api.ts";
import { isAgentmeterError } from "../../../schemas/errors.ts";
import { falseIntegerReason, firstFalseInteger } from "../../../schemas/exact-numbers.ts";
import type { BillingConfig } from "../../core/index.ts";
import { callerOf, guard } from "../auth.ts";
import type { IngestProducer } from "../ingest-producer.ts";
import { checkRecords } from "../ingest-validate.ts";
import type { ApiKey } from "../keys.ts";
import { ApiProblem } from "../problem.ts";

/**
 * The JSON parser of this route, with one more refusal: a number literal that denotes a fraction but
 * reads as an integer (schemas/exact-numbers.ts), which would otherwise be billed as the integer it
 * rounds to. The literal is gone once parsed, so the whole request is refused, naming it. Fastify's own
 * parser does the rest (its refusal of __proto__ and constructor keys included).
 */
function exactNumbersOnly(app: FastifyInstance): void {
  const json = app.getDefaultJsonParser("error", "error");
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (request, body, done) => {
    const text = typeof body === "string" ? body : body.toString("utf8");
    json(request, text, (error, value) => {
      if (error !== null) return done(error, undefined);
      const literal = firstFalseInteger(text);
      if (literal === undefined) return done(null, value);
      done(new ApiProblem("REQUEST_INVALID", falseIntegerReason(literal), ["body"]), undefined);
    });
  });
}

export interface IngestRouteOptions {
  keys: readonly ApiKey[];
  producer: IngestProducer;
  maxBatch: number;
  maxRecordBytes: number;
  billing: BillingConfig;
}

/**
 * POST /v1/records. The answer waits for the broker's acknowledgement of every accepted record
 * (acks=all), so an `accepted` survives the server being killed right after answering. If the broker
 * could not take them, the answer is 503 with those records marked PRODUCE_FAILED: resending them with
 * the same record_id is safe (the billing core ignores a repeated record_id).
 */
export const ingestRoutes: FastifyPluginAsyncZod<IngestRouteOptions> = async (app, options) => {
  // Records are JSON only. Fastify would parse text/plain into a string that then fails the body's
  // shape, with a message not saying JSON is wanted; without the parser it is a wrong content type.
  app.removeContentTypeParser("text/plain");
  exactNumbersOnly(app);
  app.post(
    "/v1/records",
    {
      onRequest: guard(options.keys, "ingest"),
      schema: {
        summary: "Send one input record or an array of them (docs/records.md)",
        tags: ["ingest"],
        security: [{ apiKey: [] }],
        body: ingestBodySchema(options.maxBatch),
        response: { 202: ingestResponseSchema, 503: ingestResponseSchema, "4xx": apiErrorSchema },
      },
    },
    async (request, reply) => {
      const key = callerOf(request);
      const checked = checkRecords(request.body, {
        maxRecordBytes: options.maxRecordBytes,
        mayCredit: key.scope.kind === "admin",
        billing: options.billing,
      });
      const results: RecordResult[] = await Promise.all(
        checked.map(async (item): Promise<RecordResult> => {
          if (!item.ok) return item.result;
          const recordId = item.prepared.record.record_id;
          try {
            await options.producer.send(item.prepared);
            return { index: item.index, status: "accepted", record_id: recordId };
          } catch (error) {
            if (!isAgentmeterError(error)) throw error;
            return {
              index: item.index,
              status: "rejected",
              record_id: recordId,
              code: error.code,
              fields: [],
              message: "not written to Kafka; resend it with the same record_id",
            };
          }
        }),
      );
      const accepted = results.filter((result) => result.status === "accepted").length;
      const failed = results.some(
        (result) => result.status === "rejected" && result.code === "PRODUCE_FAILED",
      );
      const answer: IngestResponse = { accepted, rejected: results.length - accepted, results };
      return reply.code(failed ? 503 : 202).send(answer);
    },
  );
};
