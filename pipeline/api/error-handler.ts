import { ClickHouseError } from "@clickhouse/client";
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import type { ApiError } from "../../schemas/api.ts";
import { isAgentmeterError } from "../../schemas/errors.ts";
import { redactText } from "../auth/redact.ts";
import { looksUnreachable } from "../runtime/reach.ts";
import { ApiProblem } from "./problem.ts";

/**
 * The longest path parameter the router takes (its maxParamLength). Route parameters are ids of at most
 * 128 characters: anything longer is refused before routing, and validation names the field below it.
 */
export const MAX_PARAM_LENGTH = 200;

function body(problem: ApiProblem): ApiError {
  return {
    error: {
      code: problem.code,
      message: problem.message,
      ...(problem.fields === undefined ? {} : { fields: [...problem.fields] }),
    },
  };
}

/**
 * Every failure becomes a JSON error body with a code. What was not raised on purpose is logged (its
 * text passed through redactText) and answered as INTERNAL with no detail: no stack, no driver message.
 */
export function installErrorHandling(app: FastifyInstance): void {
  app.setErrorHandler(answerError);
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(body(new ApiProblem("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`))),
  );
}

/**
 * The error handler, and Fastify's `frameworkErrors` too: what the router refuses before any route is
 * chosen (a bad percent-encoding, an over-long path parameter) never reaches the error handler, and
 * Fastify's own answer to it quotes the URL in a body of another shape.
 */
export function answerError(error: FastifyError, request: FastifyRequest, reply: FastifyReply) {
  const problem = toProblem(error);
  if (
    problem.code === "INTERNAL" ||
    problem.code === "SERVICE_UNAVAILABLE" ||
    problem.code === "PRODUCE_FAILED"
  )
    request.log.error(
      { err: { type: error.name, code: error.code, message: redactText(error.message) } },
      "request failed",
    );
  return reply.code(problem.status).type("application/json").send(body(problem));
}

function toProblem(error: FastifyError): ApiProblem {
  if (error instanceof ApiProblem) return error;
  if (hasZodFastifySchemaValidationErrors(error)) {
    const context = error.validationContext ?? "request";
    const fields = error.validation.map((issue) => {
      const path = issue.instancePath.replace(/^\//, "").replaceAll("/", ".");
      return path === "" ? context : `${context}.${path}`;
    });
    const messages = error.validation.map((issue, index) => `${fields[index]}: ${issue.message}`);
    return new ApiProblem("REQUEST_INVALID", messages.join("; "), fields);
  }
  if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE")
    return new ApiProblem("BODY_TOO_LARGE", "the request body is too large");
  if (error.code === "FST_ERR_CTP_INVALID_JSON_BODY" || error.code === "FST_ERR_CTP_EMPTY_JSON_BODY")
    return new ApiProblem("REQUEST_INVALID", "the body is not valid JSON", ["body"]);
  if (error.code === "FST_ERR_CTP_INVALID_MEDIA_TYPE")
    return new ApiProblem(
      "REQUEST_INVALID",
      "the body must be JSON: send it with Content-Type: application/json",
      ["content-type"],
    );
  // The router's own messages quote the URL: these say what is wrong without it.
  if (error.code === "FST_ERR_MAX_PARAM_LENGTH")
    return new ApiProblem(
      "REQUEST_INVALID",
      `a path parameter is longer than ${MAX_PARAM_LENGTH} characters`,
      ["params"],
    );
  if (error.code === "FST_ERR_BAD_URL")
    return new ApiProblem("REQUEST_INVALID", "the URL's path is not valid percent-encoded UTF-8", ["url"]);
  // Unknown table or database: no processor has created the analytics tables yet.
  if (error instanceof ClickHouseError && (error.code === "60" || error.code === "81"))
    return new ApiProblem("SERVICE_UNAVAILABLE", "the analytics tables do not exist yet: start a processor");
  // A store that does not answer is the server's state, not the request's: 503, worth retrying.
  if (looksUnreachable(error))
    return new ApiProblem("SERVICE_UNAVAILABLE", "a store this route reads does not answer: try again later");
  if (isAgentmeterError(error, "PRODUCE_FAILED"))
    return new ApiProblem(
      "PRODUCE_FAILED",
      "the records could not be written to Kafka; resend them (same record_id)",
    );
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500)
    return new ApiProblem("REQUEST_INVALID", "the request is malformed");
  return new ApiProblem("INTERNAL", "internal error");
}
