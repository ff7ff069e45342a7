import type { z } from "zod";
import type { ErrorCode } from "./errors.ts";
import { falseIntegerReason, firstFalseInteger } from "./exact-numbers.ts";
import { fastInputRecord } from "./fast-record.ts";
import { type InputRecord, inputRecordSchema, type TopicRecord, topicRecordSchema } from "./input-record.ts";

type DecodeFailure = {
  ok: false;
  code: Extract<ErrorCode, "RECORD_NOT_JSON" | "RECORD_TOO_LARGE" | "RECORD_INVALID">;
  reason: string;
};
export type DecodeResult = { ok: true; record: InputRecord } | DecodeFailure;
export type TopicDecodeResult = { ok: true; record: TopicRecord } | DecodeFailure;

export const DEFAULT_MAX_RECORD_BYTES = 64 * 1024;

/** One line per zod issue, each naming its path: `agent_usage.A.prompt_tokens: Too small: ...`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return printable(
    issues
      .map((issue) => {
        const path = issue.path.map(String).join(".");
        return path === "" ? issue.message : `${path}: ${issue.message}`;
      })
      .join("; "),
  );
}

/**
 * A reason quotes the record (a key it refused, a piece of text JSON.parse choked on), and the reason is
 * printed as one line (compute's stderr, logs, an operator's terminal): a line break, an escape sequence
 * or a NUL in the record would otherwise forge lines or drive the terminal. They are written as \uXXXX.
 */
export function printable(text: string): string {
  return text.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this finds.
    /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g,
    (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * Bytes (or text) of one input record -> the validated record, or why not. Never throws on data:
 * bad data is a result for the caller to dead-letter, not an exception.
 */
export function decodeRecord(bytes: Buffer | Uint8Array | string, opts: { maxBytes: number }): DecodeResult {
  return decodeWith(inputRecordSchema, bytes, opts) as DecodeResult;
}

/**
 * decodeRecord for a reader of the input topic itself: it also accepts the processor's tick records
 * (which belong to no account). Same limits, same fast path, same reasons.
 */
export function decodeTopicRecord(
  bytes: Buffer | Uint8Array | string,
  opts: { maxBytes: number },
): TopicDecodeResult {
  return decodeWith(topicRecordSchema, bytes, opts);
}

function decodeWith(
  schema: typeof inputRecordSchema | typeof topicRecordSchema,
  bytes: Buffer | Uint8Array | string,
  opts: { maxBytes: number },
): TopicDecodeResult {
  const size = typeof bytes === "string" ? Buffer.byteLength(bytes, "utf8") : bytes.byteLength;
  if (size > opts.maxBytes) {
    return {
      ok: false,
      code: "RECORD_TOO_LARGE",
      reason: `record is ${size} bytes, the limit is ${opts.maxBytes}`,
    };
  }
  // The bytes are read in place (Buffer.from of a Buffer would copy them first).
  const text =
    typeof bytes === "string"
      ? bytes
      : Buffer.isBuffer(bytes)
        ? bytes.toString("utf8")
        : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, code: "RECORD_NOT_JSON", reason: printable(`not JSON: ${(error as Error).message}`) };
  }
  const falseInteger = firstFalseInteger(text);
  if (falseInteger !== undefined)
    return { ok: false, code: "RECORD_INVALID", reason: falseIntegerReason(falseInteger) };
  // The fast path returns what zod would for a record it can vouch for; anything else, zod decides.
  const fast = fastInputRecord(json);
  if (fast !== undefined) return { ok: true, record: fast };
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, code: "RECORD_INVALID", reason: formatIssues(parsed.error.issues) };
  }
  return { ok: true, record: parsed.data };
}
