import { z } from "zod";
import { levelSchema, SCHEMA_VERSION } from "./common.ts";

/**
 * The latest budget view of one account, for agent runtimes (a compacted topic keyed by account
 * key): can they continue, and which chats are paused. Tokens only, so it is plain JSON.
 */
export const budgetStateSchema = z.strictObject({
  schema_version: z.literal(SCHEMA_VERSION),
  account_key: z.string(),
  level: levelSchema,
  enterprise_id: z.string().nullable(),
  mozaiks_user_id: z.string(),
  platform_user_id: z.string().nullable(),
  can_continue: z.boolean(),
  /** Why the account cannot continue, null when it can. */
  pause_reason: z.string().nullable(),
  allowance_tokens: z.int(),
  /**
   * Allowance tokens used in the current period (all of them for a one-off trial). It can pass
   * `allowance_tokens` (a budget lowered below what was used) and is not `allowance_tokens -
   * trial_remaining_tokens` when a period carried tokens in. Absent in states published before it
   * existed.
   */
  trial_used_tokens: z.int().optional(),
  trial_remaining_tokens: z.int(),
  paid_tokens: z.int(),
  available_tokens: z.int(),
  /**
   * Tokens the account's open holds reserve. A new hold is granted only within available_tokens -
   * held_tokens; usage without a hold is not held back by it. Absent in states published before holds
   * existed: read as 0.
   */
  held_tokens: z.int().default(0),
  /** Tokens left in effective dated grants (part of available_tokens); absent on accounts without grants. */
  grant_tokens: z.int().optional(),
  /**
   * The current budget period of a periodic allowance (docs/billing.md, Budget periods): when it began
   * and what the previous periods carried into it. Absent when the allowance is one-off, and on an
   * account no record has touched yet (its first record opens the period of its event time).
   */
  period: z.strictObject({ start: z.string(), carried_tokens: z.int() }).optional(),
  paused_chats: z.array(
    z.strictObject({ chat_id: z.string(), pause_reason: z.string().nullable(), can_resume: z.boolean() }),
  ),
  /** Event time of the last record applied to the account. */
  as_of: z.string().nullable(),
});
export type BudgetState = z.infer<typeof budgetStateSchema>;
