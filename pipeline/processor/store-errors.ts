import { isAgentmeterError } from "../errors.ts";

/**
 * Errors a retry cannot cure: the store refuses this data, not this moment. Retrying them would stop the
 * partition for good, so the processor splits the batch down to the record that causes one and
 * dead-letters it (RECORD_STORE_REJECTED). Everything else (connections, timeouts, leaders moving) is
 * transient and retried with backoff.
 */
const MONGO_CODES = new Set([
  10334, // BSONObjectTooLarge
  17280, // KeyTooLong
  17419, // document too large after an update
]);
const CLICKHOUSE_CODES = new Set([
  "6", // CANNOT_PARSE_TEXT
  "26", // CANNOT_PARSE_QUOTED_STRING
  "27", // CANNOT_PARSE_INPUT_ASSERTION_FAILED
  "53", // TYPE_MISMATCH
  "69", // ARGUMENT_OUT_OF_BOUND
  "70", // CANNOT_CONVERT_TYPE
  "117", // INCORRECT_DATA
  "252", // TOO_MANY_PARTS: deterministic only as "too many partitions for a single insert block"
]);
/** Code 252 also means "too many parts" under a merge backlog: that one passes, so it is retried. */
const TOO_MANY_PARTITIONS = /too many partitions for single insert block/i;
const KAFKA_TYPES = new Set([
  "MESSAGE_TOO_LARGE",
  "RECORD_LIST_TOO_LARGE",
  "INVALID_RECORD",
  "CORRUPT_MESSAGE",
]);

/** @clickhouse/client's ClickHouseError keeps Error's `name`: its class is what tells it apart. */
function isClickHouseError(error: object): boolean {
  return (
    (error as { name?: unknown }).name === "ClickHouseError" || error.constructor?.name === "ClickHouseError"
  );
}

function isDeterministicOne(error: unknown): boolean {
  if (isAgentmeterError(error, "RECORD_STORE_REJECTED")) return true;
  // The billing core failed on records loaded fresh from the stores (partition-worker.ts): the same
  // records fail the same way on every retry.
  if (isAgentmeterError(error, "RECORD_APPLY_FAILED")) return true;
  if (typeof error !== "object" || error === null) return false;
  const { name, code, type, message } = error as {
    name?: string;
    code?: unknown;
    type?: string;
    message?: string;
  };
  if (name === "BSONError" || /larger than the maximum size/i.test(message ?? "")) return true;
  if (name?.startsWith("Mongo") === true && typeof code === "number" && MONGO_CODES.has(code)) return true;
  if (isClickHouseError(error) && typeof code === "string" && CLICKHOUSE_CODES.has(code))
    return code !== "252" || TOO_MANY_PARTITIONS.test(message ?? "");
  return name?.startsWith("KafkaJS") === true && type !== undefined && KAFKA_TYPES.has(type);
}

/** True when the error, or any error it wraps, is one a retry cannot cure. */
export function isDeterministicStoreError(error: unknown): boolean {
  for (let current = error, depth = 0; current !== undefined && current !== null && depth < 5; depth++) {
    if (isDeterministicOne(current)) return true;
    current =
      (current as { cause?: unknown; originalError?: unknown }).cause ??
      (current as { originalError?: unknown }).originalError;
  }
  return false;
}
