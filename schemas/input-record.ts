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
