import type { RecordResult } from "../../schemas/api.ts";
import { isAgentmeterError } from "../../schemas/errors.ts";
import { isOperatorRecord } from "../../schemas/input-record.ts";
import { uuidv7 } from "../../sdk/record-id.ts";
import {
  type PreparedRecord,
  prepareRecord,
  type RecordInput,
  RecordInvalidError,
} from "../../sdk/validate.ts";
import { type BillingConfig, priceUsage } from "../core/index.ts";

export interface IngestPolicy {
  /** The processor's record size bound (AGENTMETER_MAX_RECORD_BYTES). */
  maxRecordBytes: number;
  /** Credit records move money: only an admin key may send them. */
  mayCredit: boolean;
  /**
   * The processor's billing rules: a usage record its price book cannot price (UNKNOWN_MODEL,
   * UNPRICED_TOKEN_CLASS) would be dead-lettered after a 202, so it is refused here, as the SDK's
   * TokenManager refuses it at the call.
   */
  billing: BillingConfig;
}

export type Checked =
  | { index: number; ok: true; prepared: PreparedRecord }
  | { index: number; ok: false; result: Extract<RecordResult, { status: "rejected" }> };

function idOf(input: Record<string, unknown>): string | null {
  return typeof input.record_id === "string" ? input.record_id : null;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  return Array.isArray(value) ? "an array" : `a ${typeof value}`;
}

/**
 * Each record of a request on its own, with the processor's schema (the SDK's prepareRecord): a bad
 * record, or an element that is not an object at all, is a result with its code and field paths, never
 * an exception, so its neighbours still go through. A missing record_id is filled here, before
 * validation, so a rejected record's result names the same id its message does.
 */
export function checkRecords(
  body: Record<string, unknown> | readonly unknown[],
  policy: IngestPolicy,
): Checked[] {
  const inputs: readonly unknown[] = Array.isArray(body) ? body : [body];
  return inputs.map((input, index) => checkOne(input, index, policy));
}

function checkOne(element: unknown, index: number, policy: IngestPolicy): Checked {
  const reject = (recordId: string | null, code: string, fields: string[], message: string): Checked => ({
    index,
    ok: false,
    result: { index, status: "rejected", record_id: recordId, code, fields, message },
  });
  if (!isObject(element))
    return reject(
      null,
      "RECORD_INVALID",
      ["(record)"],
      `element ${index} is not a record: expected a JSON object, got ${kindOf(element)}`,
    );
  const input = element.record_id === undefined ? { ...element, record_id: uuidv7() } : element;
  const recordId = idOf(input);
  if (!policy.mayCredit && typeof input.type === "string" && isOperatorRecord({ type: input.type }))
    return reject(recordId, "RECORD_UNAUTHORIZED", ["type"], `${input.type} records need an admin key`);
  try {
    const prepared = prepareRecord(input as RecordInput, policy.maxRecordBytes);
    if (prepared.record.type === "usage") {
      const priced = priceUsage(prepared.record, policy.billing);
      if (!priced.ok) return reject(recordId, priced.code, ["agent_usage"], priced.reason);
    }
    return { index, ok: true, prepared };
  } catch (error) {
    if (error instanceof RecordInvalidError)
      return reject(recordId, error.code, [...error.fields], error.message);
    if (isAgentmeterError(error)) return reject(recordId, error.code, [], error.message);
    throw error;
  }
}
