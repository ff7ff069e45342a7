import { z } from "zod";
import { creditRecordSchema } from "./credit-record.ts";
import { sessionRecordSchema } from "./session-record.ts";
import { usageRecordSchema } from "./usage-record.ts";

/** Everything on the input topic: one discriminated union on `type`. */
export const inputRecordSchema = z.discriminatedUnion("type", [
  usageRecordSchema,
  creditRecordSchema,
  sessionRecordSchema,
]);
export type InputRecord = z.infer<typeof inputRecordSchema>;
/** What a producer writes (before defaults and transforms, e.g. amount_micros as string). */
export type InputRecordJson = z.input<typeof inputRecordSchema>;

/**
 * The account a record belongs to, and the Kafka message key producers must use, so that all of an
 * account's records land on one partition in order. Ids cannot contain `:` (see ids.ts), so the key
 * is unambiguous.
 */
export function accountKeyOf(record: {
  level: "platform" | "app_usage";
  enterprise_id: string;
  mozaiks_user_id: string;
  platform_user_id?: string | undefined;
}): string {
  return record.level === "platform"
    ? `platform:${record.mozaiks_user_id}`
    : `app:${record.enterprise_id}:${record.platform_user_id ?? ""}`;
}
