/**
 * The contracts layer's error type: the schemas, the keys and every layer above them raise it, so it
 * lives at the bottom (nothing here imports the pipeline).
 *
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
  /** Usage of a token class (audio) that the model's price entry does not price and that has no fallback. */
  "UNPRICED_TOKEN_CLASS",
  /** A void or refund whose target usage record is older than the correction window allows. */
  "CORRECTION_WINDOW_PASSED",
  /** A void or refund naming a record_id the account holds no usage record for (never seen, or forgotten). */
  "CORRECTION_TARGET_UNKNOWN",
  /** A void or refund its target cannot take: already voided, or a refund above what is left to refund. */
  "CORRECTION_INVALID",
  "RECORD_TOO_LATE",
  /** Event time too far from the Kafka record's own timestamp (bounded skew). */
  "RECORD_TIME_SKEW",
  /** A number that would pass what the stores can hold exactly (int64 micros, 2^53 tokens). */
  "RECORD_OUT_OF_RANGE",
  /** The record sits on another partition than its key's partition under the documented partitioner. */
  "RECORD_WRONG_PARTITION",
  /** A money-bearing or ownership record without a valid operator signature. */
  "RECORD_UNAUTHORIZED",
  /** An app end user's record naming another creator than the app's bound one. */
  "RECORD_CREATOR_MISMATCH",
  /** A store refused the record's effect deterministically (a retry would fail the same way). */
  "RECORD_STORE_REJECTED",
  /**
   * The billing core failed on the record (a bug: the record is valid), again after a fresh load from
   * the stores. Dead-lettered within AGENTMETER_APPLY_FAILURE_LIMIT an hour, to be re-driven after a fix.
   */
  "RECORD_APPLY_FAILED",
  /** A key (account, chat, workflow, topic partition, namespace) that is not in its documented form. */
  "KEY_INVALID",
  // local stack and services
  "SERVICE_INSTALL_FAILED",
  "SERVICE_START_FAILED",
  "PORT_IN_USE",
  "PREREQUISITE_MISSING",
  "SERVICE_UNAVAILABLE",
  // stores
  "OWNERSHIP_LOST",
  /** A stored document that agentmeter cannot read (foreign or corrupt). */
  "DOCUMENT_INVALID",
  /** The input topic's partitions differ from what the stores were written under. */
  "TOPIC_LAYOUT_CHANGED",
  // producer SDK
  "PRODUCE_FAILED",
  "SDK_CLOSED",
  "VIEW_NOT_READY",
  // holds (SDK)
  /** A hold was not granted (the decision's reason and figures are in the error's details). */
  "HOLD_DENIED",
  /** No hold decision arrived in time: the caller must not assume a grant. */
  "HOLD_TIMEOUT",
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
