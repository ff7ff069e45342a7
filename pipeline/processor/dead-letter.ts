import { isUtf8 } from "node:buffer";
import type { DeadLetter } from "../../schemas/index.ts";
import { SCHEMA_VERSION } from "../../schemas/index.ts";
import type { ErrorCode } from "../errors.ts";
import type { LogPosition } from "./ports.ts";

/**
 * The dead-letter envelope keeps the original bytes (the value, and the key when it is not text), so a
 * fixed record can be replayed byte for byte.
 */
export function deadLetter(
  position: LogPosition,
  key: Buffer | null,
  value: Buffer | null,
  code: ErrorCode,
  reason: string,
  failedAt: string,
  /** The name the stores know the topic by (the worker's source), when it is another incarnation's. */
  storedAs: string = position.topic,
): DeadLetter {
  return {
    schema_version: SCHEMA_VERSION,
    reason_code: code,
    reason,
    original: (value ?? Buffer.alloc(0)).toString("base64"),
    source: {
      topic: position.topic,
      partition: position.partition,
      offset: position.offset,
      ...(storedAs === position.topic ? {} : { stored_as: storedAs }),
    },
    key: key === null ? null : key.toString("utf8"),
    ...(key === null || isUtf8(key) ? {} : { key_base64: key.toString("base64") }),
    failed_at: failedAt,
  };
}
