import { z } from "zod";
import { enterpriseIdSchema, modelNameSchema, userIdSchema } from "./ids.ts";
import { tokenCountSchema } from "./money.ts";
import { priceBookSchema } from "./price-book.ts";
import { isoDateTimeSchema } from "./time.ts";

const basisPoints = z.int().min(0).max(10_000);

/**
 * A periodic allowance: reset at every boundary (`anchor` plus whole days, weeks or months, UTC), with
 * what was left carried into the next period within [rollover_min_tokens, rollover_max_tokens].
 */
const periodSchema = z
  .strictObject({
    every: z.enum(["day", "week", "month"]),
    /** A UTC instant on the period grid; a monthly anchor's day of month is at most 28 (every month has it). */
    anchor: isoDateTimeSchema.default("2025-01-01T00:00:00Z"),
    rollover_min_tokens: tokenCountSchema.default(0),
    rollover_max_tokens: tokenCountSchema.default(0),
    /**
     * Whether an overdraft (paid balance below zero) at a boundary stays owed into the new period (true,
     * the default: the tokens were used and billed) or is written off (false: the paid balance starts
     * the new period at zero; OpenMeter's preserveOverageAtReset false).
     */
    carry_overage: z.boolean().default(true),
  })
  .refine((p) => p.rollover_min_tokens <= p.rollover_max_tokens, {
    message: "rollover_min_tokens must be at most rollover_max_tokens",
    path: ["rollover_min_tokens"],
  })
  .refine((p) => p.every !== "month" || new Date(Date.parse(p.anchor)).getUTCDate() <= 28, {
    message:
      "a monthly anchor's day of month, in UTC, must be at most 28 (periods are anchored at a UTC instant)",
    path: ["anchor"],
  });
export type AllowancePeriod = z.infer<typeof periodSchema>;

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
  /**
   * Bound on a record's event time against its Kafka log timestamp (the processor and the audit pass
   * it; `compute` on a file has none and skips the check). Outside it: rejected, RECORD_TIME_SKEW.
   */
  event_time: z
    .strictObject({
      /** How far `occurred_at` may be after the log time (clock skew of producers), default 15 minutes. */
      max_ahead_seconds: z
        .int()
        .min(0)
        .max(366 * 86_400)
        .default(900),
      /** How far `occurred_at` may be before the log time (late delivery), default 35 days. */
      max_behind_seconds: z
        .int()
        .min(0)
        .max(10 * 366 * 86_400)
        .default(35 * 86_400),
    })
    .prefault({}),
  /**
   * Pinned app creators: a record for a listed app (app_usage or platform) naming another
   * mozaiks_user_id is rejected (RECORD_CREATOR_MISMATCH), even an account's first record. Unlisted
   * apps bind the creator named by an end user account's first record.
   */
  apps: z.record(enterpriseIdSchema, z.strictObject({ creator: userIdSchema })).default({}),
  /**
   * End users of apps not listed in `apps`: "first_record" binds each account's creator from its first
   * record, which any producer can name (development); "reject" refuses their records
   * (RECORD_CREATOR_MISMATCH), so only the operator's `apps` decides who earns an app's 70%.
   */
  unpinned_apps: z.enum(["first_record", "reject"]).default("first_record"),
  /**
   * Open chats per account. A record opening one more first closes the open chat with the oldest
   * last_event_at (ties by chat id) as a finalize would, so documents and budget states stay bounded.
   */
  max_open_chats: z.int().min(1).max(1_000_000).default(1_000),
  /** Holds (reservations of tokens for an agent turn), docs/holds.md. */
  holds: z
    .strictObject({
      /**
       * Open holds per account: a hold past it is denied (`too_many_holds`), so the account document
       * and the work per record stay bounded.
       */
      max_open: z.int().min(1).max(100_000).default(1_000),
      /** Longest a hold may last (expires_at - occurred_at); longer is denied (`expiry_too_far`). */
      max_seconds: z
        .int()
        .min(1)
        .max(7 * 86_400)
        .default(3_600),
    })
    .prefault({}),
  /**
   * Periodic allowances, per level (docs/billing.md, Budget periods); null keeps the allowance
   * one-off. A creator's platform allowance is monthly by default (calendar months, UTC, nothing
   * carried); an app end user's trial is one-off by default.
   */
  allowance_period: z
    .strictObject({
      platform: periodSchema.nullable().default({
        every: "month",
        anchor: "2025-01-01T00:00:00Z",
        rollover_min_tokens: 0,
        rollover_max_tokens: 0,
        carry_overage: true,
      }),
      app_usage: periodSchema.nullable().default(null),
    })
    .prefault({}),
  /** Voids and refunds (docs/billing.md, Corrections). */
  corrections: z
    .strictObject({
      /**
       * How long a usage record may be corrected, in event time: a void or refund is accepted while the
       * target's occurred_at is later than the account's newest event time minus this (default 30 days).
       * 0 turns corrections off (and the account remembers no usage records for them).
       */
      window_seconds: z
        .int()
        .min(0)
        .max(366 * 86_400)
        .default(30 * 86_400),
      /**
       * Usage records an account remembers for corrections (what a void must give back, exactly), a bound
       * on the document size: past it the oldest are forgotten first, and can no longer be corrected.
       */
      max_remembered: z.int().min(1).max(1_000_000).default(10_000),
    })
    .prefault({}),
  price_book: priceBookSchema.optional(),
});
export type BillingConfigInput = z.input<typeof billingConfigSchema>;
export type ParsedBillingConfig = z.infer<typeof billingConfigSchema>;
