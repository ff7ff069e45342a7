import { z } from "zod";
import { refundRecordSchema, voidRecordSchema } from "./correction-record.ts";
import { creditRecordSchema } from "./credit-record.ts";
import { holdRecordSchema, releaseRecordSchema } from "./hold-record.ts";
import { sessionRecordSchema } from "./session-record.ts";
import { tickRecordSchema } from "./tick-record.ts";
import { usageRecordSchema } from "./usage-record.ts";

/**
 * Every record that belongs to an account (keyed by its account key): one discriminated union on
 * `type`. This is what a producer sends and what decodeRecord accepts.
 */
export const inputRecordSchema = z.discriminatedUnion("type", [
  usageRecordSchema,
  creditRecordSchema,
  sessionRecordSchema,
  holdRecordSchema,
  releaseRecordSchema,
  voidRecordSchema,
  refundRecordSchema,
]);
export type InputRecord = z.infer<typeof inputRecordSchema>;
/** What a producer writes (before defaults and transforms, e.g. amount_micros as string). */
export type InputRecordJson = z.input<typeof inputRecordSchema>;

/**
 * Record types that move money or tokens and so must come from the operator's systems: credits, and the
 * corrections (a void gives tokens back and reverses billed money; a refund returns money). They are
 * signed (pipeline/auth/signature.ts), and their ids are deduplicated apart from the runtimes' records
 * (pipeline/core/dedupe.ts): the two come from different systems, which do not share an id space.
 */
const OPERATOR_RECORD_TYPES: ReadonlySet<string> = new Set(["credit", "void", "refund"]);

/** Whether a record is an operator's (see OPERATOR_RECORD_TYPES). */
export function isOperatorRecord(record: { type: string }): boolean {
  return OPERATOR_RECORD_TYPES.has(record.type);
}

/**
 * Everything on the input topic: the account records plus the processor's ticks, which belong to no
 * account. Kept apart from InputRecord so that code reading a record's account ids (every producer,
 * the SDK, the stores) never has to rule out a tick; only the code that reads the topic itself
 * (admission, the core's applyBatch, the audit) takes the wider type, through decodeTopicRecord.
 */
export const topicRecordSchema = z.discriminatedUnion("type", [
  usageRecordSchema,
  creditRecordSchema,
  sessionRecordSchema,
  holdRecordSchema,
  releaseRecordSchema,
  voidRecordSchema,
  refundRecordSchema,
  tickRecordSchema,
]);
export type TopicRecord = z.infer<typeof topicRecordSchema>;
