import { z } from "zod";
import { levelSchema, SCHEMA_VERSION } from "./common.ts";
import { CREDIT_KINDS } from "./credit-record.ts";
import { SESSION_EVENTS } from "./session-record.ts";

/**
 * Everything the billing core emits. Money fields are bigint micros in memory; write them with
 * `bigintReplacer` (decimal strings) since JSON has no bigint. Token fields are safe integers.
 */

const version = z.literal(SCHEMA_VERSION);

/** Fields every output carries: which record caused it and whose account it touched. */
export const outputBaseShape = {
  schema_version: version,
  record_id: z.string(),
  account_key: z.string(),
  level: levelSchema,
  enterprise_id: z.string(),
  mozaiks_user_id: z.string(),
  platform_user_id: z.string().nullable(),
  /** Event time of the causing record (never the wall clock: the core has none). */
  occurred_at: z.string(),
};

/** Token balances of an account after a record. `paid_tokens` is negative in overdraft. */
export const balanceSnapshotSchema = z.strictObject({
  allowance_tokens: z.int(),
  trial_used_tokens: z.int(),
  trial_remaining_tokens: z.int(),
  paid_tokens: z.int(),
  available_tokens: z.int(),
});
export type BalanceSnapshot = z.infer<typeof balanceSnapshotSchema>;

export const DECISIONS = ["trial", "paid", "mixed", "overdraft"] as const;
export const BILLING_TARGETS = ["mozaiks_user", "platform_user"] as const;
export const PAUSE_REASONS = ["trial_exhausted", "allowance_exhausted", "insufficient_tokens"] as const;

export const agentOutcomeSchema = z.strictObject({
  model: z.string(),
  price_id: z.string(),
  /** True when the model was unknown and the configured default price was used instead. */
  price_fallback: z.boolean(),
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  response_time_ms: z.number().nullable(),
  message_count: z.int().nullable(),
});

/** Everything computed for one usage record (the seed's output fields, in exact units). */
export const usageOutcomeSchema = z.strictObject({
  kind: z.literal("usage_outcome"),
  ...outputBaseShape,
  user_id: z.string().nullable(),
  workflow_type: z.string(),
  workflow_name: z.string(),
  session_id: z.string(),
  chat_id: z.string(),
  billing_target: z.enum(BILLING_TARGETS),
  tokens_used: z.int(),
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  /** Price of all tokens, whoever pays. */
  cost_micros: z.bigint(),
  /** Price of the paid (non-trial) tokens: what the billing target is charged. */
  billed_micros: z.bigint(),
  creator_share_micros: z.bigint(),
  platform_fee_micros: z.bigint(),
  creator_share_bp: z.int(),
  trial_tokens_used: z.int(),
  paid_tokens_used: z.int(),
  decision: z.enum(DECISIONS),
  is_free_trial: z.boolean(),
  price_ids: z.array(z.string()),
  agents: z.record(z.string(), agentOutcomeSchema),
  balance_after: balanceSnapshotSchema,
  /** Whether the account can keep going after this record (the seed's can_continue()). */
  can_continue: z.boolean(),
  /** The chat's pause state after this record. */
  chat_paused: z.boolean(),
  pause_reason: z.string().nullable(),
});
export type UsageOutcome = z.infer<typeof usageOutcomeSchema>;

export const budgetEventSchema = z.discriminatedUnion("event", [
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("threshold_reached"),
    ...outputBaseShape,
    threshold_bp: z.int(),
    used_bp: z.int(),
    balance: balanceSnapshotSchema,
  }),
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("exhausted"),
    ...outputBaseShape,
    chat_id: z.string(),
    pause_reason: z.enum(PAUSE_REASONS),
    balance: balanceSnapshotSchema,
  }),
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("resumable"),
    ...outputBaseShape,
    chat_id: z.string(),
    balance: balanceSnapshotSchema,
  }),
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("overdraft"),
    ...outputBaseShape,
    balance: balanceSnapshotSchema,
  }),
  /**
   * A running session costs more than `multiple_bp` / 10000 times its workflow's average (the seed's
   * check_workflow_cost_thresholds). An alert, not billing: the average comes from ClickHouse at the
   * time, so unlike the other events it is not a pure function of the records.
   */
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("cost_threshold"),
    ...outputBaseShape,
    chat_id: z.string(),
    session_id: z.string(),
    workflow_name: z.string(),
    current_cost_micros: z.bigint(),
    average_cost_micros: z.bigint(),
    threshold_cost_micros: z.bigint(),
    multiple_bp: z.int(),
    session_count: z.int(),
  }),
]);
export type BudgetEvent = z.infer<typeof budgetEventSchema>;

export const creditAppliedSchema = z.strictObject({
  kind: z.literal("credit_applied"),
  ...outputBaseShape,
  credit_kind: z.enum(CREDIT_KINDS),
  tokens: z.int(),
  amount_micros: z.bigint().nullable(),
  balance_after: balanceSnapshotSchema,
  can_continue: z.boolean(),
});
export type CreditApplied = z.infer<typeof creditAppliedSchema>;

export const sessionEventSchema = z.strictObject({
  kind: z.literal("session_event"),
  ...outputBaseShape,
  event: z.enum(SESSION_EVENTS),
  session_id: z.string(),
  chat_id: z.string(),
  workflow_name: z.string(),
  chat_paused: z.boolean(),
  pause_reason: z.string().nullable(),
  can_resume: z.boolean(),
  can_continue: z.boolean(),
});
export type SessionEvent = z.infer<typeof sessionEventSchema>;

export const agentPerformanceSchema = z.strictObject({
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  total_response_time_ms: z.number(),
  message_count: z.int(),
  avg_response_time_ms: z.number().nullable(),
});

/** Emitted when a chat is finalized (the seed's PerformanceMetrics / TokenChats summary). */
export const sessionSummarySchema = z.strictObject({
  kind: z.literal("session_summary"),
  ...outputBaseShape,
  session_id: z.string(),
  chat_id: z.string(),
  workflow_name: z.string(),
  started_at: z.string(),
  ended_at: z.string(),
  session_duration_seconds: z.number(),
  total_tokens: z.int(),
  total_cost_micros: z.bigint(),
  billed_micros: z.bigint(),
  agents_used: z.array(z.string()),
  agent_performance: z.record(z.string(), agentPerformanceSchema),
});
export type SessionSummary = z.infer<typeof sessionSummarySchema>;

export const duplicateIgnoredSchema = z.strictObject({
  kind: z.literal("duplicate_ignored"),
  ...outputBaseShape,
  record_type: z.enum(["usage", "credit", "session"]),
});
export type DuplicateIgnored = z.infer<typeof duplicateIgnoredSchema>;

/** A valid record the rules refuse; the processor dead-letters it with this code. No state change. */
export const rejectedSchema = z.strictObject({
  kind: z.literal("rejected"),
  ...outputBaseShape,
  code: z.enum(["UNKNOWN_MODEL", "RECORD_TOO_LATE"]),
  reason: z.string(),
});
export type Rejected = z.infer<typeof rejectedSchema>;

export const outputSchema = z.discriminatedUnion("kind", [
  usageOutcomeSchema,
  creditAppliedSchema,
  sessionEventSchema,
  budgetEventSchema,
  duplicateIgnoredSchema,
  sessionSummarySchema,
  rejectedSchema,
]);
export type Output = z.infer<typeof outputSchema>;
export type OutputKind = Output["kind"];
