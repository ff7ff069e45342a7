import type { RecordResult } from "../../schemas/api.ts";
import { isAgentmeterError } from "../../schemas/errors.ts";
import {
  type PreparedRecord,
  prepareRecord,
  type RecordInput,
  RecordInvalidError,
} from "../../sdk/validate.ts";
import { isOperatorRecord } from "../auth/signature.ts";

export interface IngestPolicy {
  /** The processor's record size bound (AGENTMETER_MAX_RECORD_BYTES). */
  maxRecordBytes: number;
  /** Credit records move money: only an admin key may send them. */
  mayCredit: boolean;
}

export type Checked =
  | { index: number; ok: true; prepared: PreparedRecord }
  | { index: number; ok: false; result: Extract<RecordResult, { status: "rejected" }> };

function idOf(input: Record<string, unknown>): string | null {
  return typeof input.record_id === "string" ? input.record_id : null;
}

/**
 * Each record of a request on its own, with the processor's schema (the SDK's prepareRecord, which
 * fills a missing record_id): a bad record is a result with its code and field paths, never an
 * exception, so its neighbours still go through.
 */
export function checkRecords(
  body: Record<string, unknown> | Record<string, unknown>[],
  policy: IngestPolicy,
): Checked[] {
  const inputs = Array.isArray(body) ? body : [body];
  return inputs.map((input, index): Checked => {
    const reject = (code: string, fields: string[], message: string): Checked => ({
      index,
      ok: false,
      result: { index, status: "rejected", record_id: idOf(input), code, fields, message },
    });
    if (!policy.mayCredit && typeof input.type === "string" && isOperatorRecord({ type: input.type }))
      return reject("RECORD_UNAUTHORIZED", ["type"], `${input.type} records need an admin key`);
    try {
      return { index, ok: true, prepared: prepareRecord(input as RecordInput, policy.maxRecordBytes) };
    } catch (error) {
      if (error instanceof RecordInvalidError) return reject(error.code, [...error.fields], error.message);
      if (isAgentmeterError(error)) return reject(error.code, [], error.message);
      throw error;
    }
  });
}
