import { z } from "zod";
import { accountIdsShape, checkLevelIds, schemaVersionSchema } from "./common.ts";
import { opaqueIdSchema } from "./ids.ts";
import { MICROS_RULE, microsInputSchema } from "./money.ts";
import { isoDateTimeSchema } from "./time.ts";

/**
 * Corrections are operator records (signed like credits): they never edit what was applied, they add
 * an adjustment after it. Both name a usage record of the same account, which must still be within the
 * correction window (billing config `corrections`).
 */

/**
 * Cancels one usage record: its tokens go back where they were drawn from (allowance or paid balance),
 * and what is left of its billed amount, creator share and platform fee is reversed exactly.
 */
export const voidRecordSchema = z
  .strictObject({
    type: z.literal("void"),
    schema_version: schemaVersionSchema,
    record_id: opaqueIdSchema,
    ...accountIdsShape,
    /** The usage record cancelled. */
    target_record_id: opaqueIdSchema,
    occurred_at: isoDateTimeSchema,
  })
  .superRefine(checkLevelIds);
export type VoidRecord = z.infer<typeof voidRecordSchema>;

/**
 * Returns money of one usage record to whoever paid it: at most what is left of its billed amount. The
 * creator share and platform fee are reversed pro rata by the split's own rule (floor to the creator,
 * the remainder to the platform), on the running total refunded, so partial refunds adding up to the
 * billed amount reverse exactly the record's shares. Tokens are not returned.
 */
export const refundRecordSchema = z
  .strictObject({
    type: z.literal("refund"),
    schema_version: schemaVersionSchema,
    record_id: opaqueIdSchema,
    ...accountIdsShape,
    /** The usage record whose billed amount is refunded. */
    target_record_id: opaqueIdSchema,
    /** Money returned, in micros; more than 0. */
    amount_micros: microsInputSchema.refine((value) => value > 0n, `${MICROS_RULE}, and more than 0`),
    occurred_at: isoDateTimeSchema,
  })
  .superRefine(checkLevelIds);
export type RefundRecord = z.infer<typeof refundRecordSchema>;
