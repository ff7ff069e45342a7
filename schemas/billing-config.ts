import { z } from "zod";
import { enterpriseIdSchema, modelNameSchema } from "./ids.ts";
import { tokenCountSchema } from "./money.ts";
import { priceBookSchema } from "./price-book.ts";

const basisPoints = z.int().min(0).max(10_000);

/**
 * Billing rules' parameters. Every field has a default, so `billingConfigSchema.parse({})` is the
 * default config; a file only names what it changes. The price book has no default here (see
 * pipeline/core/default-price-book.ts) to keep this module data-free.
 */
export const billingConfigSchema = z.strictObject({
  /** Trial allowance of each app end user, in tokens; `per_app` overrides by enterprise_id. */
  app_trial_tokens: z
    .strictObject({
      default: tokenCountSchema.default(10_000),
      per_app: z.record(enterpriseIdSchema, tokenCountSchema).default({}),
    })
    .prefault({}),
  /** Platform allowance of each creator (mozaiks user), in tokens. */
  platform_allowance_tokens: tokenCountSchema.default(100_000),
  /** Creator's share of app usage revenue in basis points; the platform gets the rest. */
  creator_share_bp: z
    .strictObject({
      default: basisPoints.default(7_000),
      per_app: z.record(enterpriseIdSchema, basisPoints).default({}),
    })
    .prefault({}),
  /** Usage thresholds (basis points of allowance + credits) that raise a budget event once each. */
  thresholds_bp: z
    .array(z.int().min(1).max(100_000))
    .max(16)
    .default([8_000, 10_000])
    .transform((list) => [...new Set(list)].sort((a, b) => a - b)),
  /** Model used for agents when neither the agent nor the record names one. */
  default_model: modelNameSchema.default("default"),
  /** A model missing from the price book: dead-letter the record, or price it as `default_model`. */
  unknown_model: z.enum(["dead_letter", "default_price"]).default("dead_letter"),
  dedupe: z
    .strictObject({
      /** Event-time window in which a repeated record_id is ignored (default 7 days). */
      horizon_seconds: z
        .int()
        .min(60)
        .max(366 * 86_400)
        .default(7 * 86_400),
      /** Safety cap on remembered ids per account; past it the oldest are forgotten first. */
      max_entries: z.int().min(100).max(1_000_000).default(50_000),
    })
    .prefault({}),
  price_book: priceBookSchema.optional(),
});
export type BillingConfigInput = z.input<typeof billingConfigSchema>;
export type ParsedBillingConfig = z.infer<typeof billingConfigSchema>;
