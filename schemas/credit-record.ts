import { z } from "zod";
import { accountIdsShape, checkLevelIds, schemaVersionSchema } from "./common.ts";
import { opaqueIdSchema } from "./ids.ts";
import { microsInputSchema, tokenCountSchema } from "./money.ts";
import { isoDateTimeSchema } from "./time.ts";

/**
 * - top_up: tokens bought; adds to the paid token balance (`amount_micros` is what was paid).
 * - grant: tokens given for free; adds to the paid token balance too (it is spendable like paid).
 * - budget_set: sets the account's allowance (the app trial for an end user, the platform
 *   allowance for a creator) to `tokens`; trial tokens already used stay used.
 */
export const CREDIT_KINDS = ["top_up", "grant", "budget_set"] as const;

export const creditRecordSchema = z
  .strictObject({
    type: z.literal("credit"),
    schema_version: schemaVersionSchema,
    record_id: opaqueIdSchema,
    kind: z.enum(CREDIT_KINDS),
    ...accountIdsShape,
    tokens: tokenCountSchema,
    amount_micros: microsInputSchema.optional(),
    occurred_at: isoDateTimeSchema,
  })
  .superRefine(checkLevelIds);
export type CreditRecord = z.infer<typeof creditRecordSchema>;
