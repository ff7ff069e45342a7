import { z } from "zod";
import { accountIdsShape, checkLevelIds, schemaVersionSchema } from "./common.ts";
import { opaqueIdSchema } from "./ids.ts";
import { microsInputSchema, tokenCountSchema } from "./money.ts";
import { epochMs, isoDateTimeSchema } from "./time.ts";

/** Burn order of dated grants: lower first. */
export const MAX_GRANT_PRIORITY = 1_000;

/**
 * - top_up: tokens bought; adds to the paid token balance (`amount_micros` is what was paid).
 * - grant: tokens given for free; adds to the paid token balance too (it is spendable like paid). A
 *   grant naming `priority`, `effective_at` or `expires_at` is a dated grant instead: its own bucket of
 *   free tokens, burned before the allowance and the paid balance and never billed (docs/billing.md).
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
    /** Dated grants only: burn order, lower first (default 0). */
    priority: z.int().min(0).max(MAX_GRANT_PRIORITY).optional(),
    /** Dated grants only: spendable from this event time on (default occurred_at). */
    effective_at: isoDateTimeSchema.optional(),
    /** Dated grants only: what is left is forfeited once event time passes it. */
    expires_at: isoDateTimeSchema.optional(),
    occurred_at: isoDateTimeSchema,
  })
  .superRefine(checkLevelIds)
  .superRefine((record, ctx) => {
    const dated =
      record.priority !== undefined || record.effective_at !== undefined || record.expires_at !== undefined;
    if (dated && record.kind !== "grant") {
      for (const field of ["priority", "effective_at", "expires_at"] as const) {
        if (record[field] !== undefined)
          ctx.addIssue({ code: "custom", path: [field], message: "only a grant may carry it" });
      }
    }
    // A grant that ends before it starts could never be spent.
    if (
      record.expires_at !== undefined &&
      epochMs(record.expires_at) <= epochMs(record.effective_at ?? record.occurred_at)
    ) {
      ctx.addIssue({
        code: "custom",
        path: ["expires_at"],
        message: "must be after effective_at (else occurred_at)",
      });
    }
  });
export type CreditRecord = z.infer<typeof creditRecordSchema>;
