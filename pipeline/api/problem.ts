import type { ApiErrorCode } from "../../schemas/api.ts";

const STATUS: Record<ApiErrorCode, number> = {
  UNAUTHENTICATED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  REQUEST_INVALID: 400,
  BODY_TOO_LARGE: 413,
  PRODUCE_FAILED: 503,
  SERVICE_UNAVAILABLE: 503,
  INTERNAL: 500,
};

/**
 * An answer the API gives on purpose, with its HTTP status from the code. Its message is shown to the
 * caller, so it is written for them and never carries a secret or an internal detail.
 */
export class ApiProblem extends Error {
  readonly status: number;

  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly fields?: readonly string[],
  ) {
    super(message);
    this.name = "ApiProblem";
    this.status = STATUS[code];
  }
}

/** The one answer for a resource the caller may not see and for one that does not exist: nothing leaks. */
export function notFound(what: string): ApiProblem {
  return new ApiProblem("NOT_FOUND", `${what} not found`);
}
