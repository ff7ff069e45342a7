import { eventTimeOutOfRange } from "../pipeline/core/limits.ts";
import { AgentmeterError } from "../pipeline/errors.ts";
import {
  bigintReplacer,
  DEFAULT_MAX_RECORD_BYTES,
  epochMs,
  formatIssues,
  type InputRecord,
  type InputRecordJson,
  inputRecordSchema,
} from "../schemas/index.ts";
import { uuidv7 } from "./record-id.ts";

type WithOptionalId<T> = T extends { record_id: string }
  ? Omit<T, "record_id"> & { record_id?: string }
  : never;

/** What a caller hands the SDK: any input record, `record_id` optional (a UUIDv7 is generated). */
export type RecordInput = WithOptionalId<InputRecordJson>;

/** A record refused before it was sent. `fields` are the dotted paths zod named (`agent_usage.A.prompt_tokens`). */
export class RecordInvalidError extends AgentmeterError {
  readonly fields: readonly string[];

  constructor(message: string, fields: readonly string[], issues: unknown) {
    super("RECORD_INVALID", message, { details: { fields, issues } });
    this.name = "RecordInvalidError";
    this.fields = fields;
  }
}

export interface PreparedRecord {
  record: InputRecord;
  /** Exactly the bytes that go on the topic. */
  value: string;
}

/**
 * Fills `record_id`, validates with the same schema the processor decodes with, and serializes. A bad
 * record throws here, in the caller's stack, instead of being dead-lettered later where nobody looks.
 */
export function prepareRecord(input: RecordInput, maxBytes = DEFAULT_MAX_RECORD_BYTES): PreparedRecord {
  const withId = input.record_id === undefined ? { ...input, record_id: uuidv7() } : input;
  const parsed = inputRecordSchema.safeParse(withId);
  if (!parsed.success) {
    const fields = parsed.error.issues.map((issue) => issue.path.map(String).join(".") || "(record)");
    throw new RecordInvalidError(
      `record ${String(withId.record_id)} is invalid: ${formatIssues(parsed.error.issues)}`,
      fields,
      parsed.error.issues,
    );
  }
  // The processor refuses a time the analytics store cannot hold (RECORD_OUT_OF_RANGE): said here, at
  // the call, as a schema error is.
  const outOfTime = eventTimeOutOfRange(parsed.data, epochMs(parsed.data.occurred_at));
  if (outOfTime !== undefined)
    throw new RecordInvalidError(
      `record ${parsed.data.record_id} is invalid: ${outOfTime.reason}`,
      [outOfTime.field],
      [],
    );
  // The record as the schema returns it (its fields in the schema's order, defaults filled in, amounts as
  // decimal strings), not the caller's object: the processor's decoder takes such a record as it is,
  // without a copy (schemas/fast-record.ts), and the bytes do not depend on how the caller built it.
  const value = JSON.stringify(parsed.data, bigintReplacer);
  const size = Buffer.byteLength(value, "utf8");
  if (size > maxBytes) {
    throw new AgentmeterError(
      "RECORD_TOO_LARGE",
      `record ${parsed.data.record_id} is ${size} bytes, the limit is ${maxBytes}`,
    );
  }
  return { record: parsed.data, value };
}
