import type { z } from "zod";
import type { ErrorCode } from "../pipeline/errors.ts";
import { type InputRecord, inputRecordSchema } from "./input-record.ts";

export type DecodeResult =
  | { ok: true; record: InputRecord }
  | {
      ok: false;
      code: Extract<ErrorCode, "RECORD_NOT_JSON" | "RECORD_TOO_LARGE" | "RECORD_INVALID">;
      reason: string;
    };

export const DEFAULT_MAX_RECORD_BYTES = 64 * 1024;

/** One line per zod issue, each naming its path: `agent_usage.A.prompt_tokens: Too small: ...`. */
export function formatIssues(issues: readonly z.core.$ZodIssue[]): string {
  return issues
    .map((issue) => {
      const path = issue.path.map(String).join(".");
      return path === "" ? issue.message : `${path}: ${issue.message}`;
    })
    .join("; ");
}

/**
 * Bytes (or text) of one input record -> the validated record, or why not. Never throws on data:
 * bad data is a result for the caller to dead-letter, not an exception.
 */
export function decodeRecord(bytes: Buffer | Uint8Array | string, opts: { maxBytes: number }): DecodeResult {
  const size = typeof bytes === "string" ? Buffer.byteLength(bytes, "utf8") : bytes.byteLength;
  if (size > opts.maxBytes) {
    return {
      ok: false,
      code: "RECORD_TOO_LARGE",
      reason: `record is ${size} bytes, the limit is ${opts.maxBytes}`,
    };
  }
  const text = typeof bytes === "string" ? bytes : Buffer.from(bytes).toString("utf8");
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    return { ok: false, code: "RECORD_NOT_JSON", reason: `not JSON: ${(error as Error).message}` };
  }
  const parsed = inputRecordSchema.safeParse(json);
  if (!parsed.success) {
    return { ok: false, code: "RECORD_INVALID", reason: formatIssues(parsed.error.issues) };
  }
  return { ok: true, record: parsed.data };
}
