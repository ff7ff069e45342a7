import { ClickHouseError } from "@clickhouse/client";
import type { FastifyError, FastifyInstance } from "fastify";
import { hasZodFastifySchemaValidationErrors } from "fastify-type-provider-zod";
import type { ApiError } from "../../schemas/api.ts";
import { isAgentmeterError } from "../../schemas/errors.ts";
import { redactText } from "../auth/redact.ts";
import { ApiProblem } from "./problem.ts";

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
  app.setErrorHandler((error: FastifyError, request, reply) => {
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
  });
  app.setNotFoundHandler((request, reply) =>
    reply
      .code(404)
      .send(body(new ApiProblem("NOT_FOUND", `no route ${request.method} ${request.url.split("?")[0]}`))),
  );
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
    return new ApiProblem("REQUEST_INVALID", "send the body as application/json", ["content-type"]);
  // Unknown table or database: no processor has created the analytics tables yet.
  if (error instanceof ClickHouseError && (error.code === "60" || error.code === "81"))
    return new ApiProblem("SERVICE_UNAVAILABLE", "the analytics tables do not exist yet: start a processor");
  if (isAgentmeterError(error, "PRODUCE_FAILED"))
    return new ApiProblem(
      "PRODUCE_FAILED",
      "the records could not be written to Kafka; resend them (same record_id)",
    );
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500)
    return new ApiProblem("REQUEST_INVALID", "the request is malformed");
  return new ApiProblem("INTERNAL", "internal error");
}
