/**
 * Every error agentmeter raises on purpose is an AgentmeterError with a code from this closed list,
 * so callers (CLI exit codes, the dead-letter envelope, tests) branch on the code, never on message text.
 */
export const ERROR_CODES = [
  // configuration and command line
  "CONFIG_INVALID",
  "CLI_USAGE",
  // input records
  "RECORD_NOT_JSON",
  "RECORD_TOO_LARGE",
  "RECORD_INVALID",
  "RECORD_KEY_MISMATCH",
  "UNKNOWN_MODEL",
  "RECORD_TOO_LATE",
  // local stack and services
  "SERVICE_INSTALL_FAILED",
  "SERVICE_START_FAILED",
  "PORT_IN_USE",
  "SERVICE_UNAVAILABLE",
  // sinks
  "SINK_WRITE_FAILED",
  "OWNERSHIP_LOST",
  // producer SDK
  "PRODUCE_FAILED",
  "SDK_CLOSED",
  "VIEW_NOT_READY",
] as const;

export type ErrorCode = (typeof ERROR_CODES)[number];

export class AgentmeterError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = "AgentmeterError";
    this.code = code;
    this.details = options?.details;
  }
}

export function isAgentmeterError(error: unknown, code?: ErrorCode): error is AgentmeterError {
  return error instanceof AgentmeterError && (code === undefined || error.code === code);
}
