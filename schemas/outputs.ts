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
  /** Tokens left in effective dated grants (part of available_tokens); only on accounts that have grants. */
  grant_tokens: z.int().optional(),
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
  /** Token classes: present when the agent reported them (counted beside prompt and completion). */
  cached_prompt_tokens: z.int().optional(),
  reasoning_tokens: z.int().optional(),
  audio_tokens: z.int().optional(),
  response_time_ms: z.number().nullable(),
  message_count: z.int().nullable(),
});

/** Everything the core computes for one usage record (tokens, cost, billed part and split, balances), in exact units. */
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
  /**
   * Token classes summed over the agents that reported them; absent when none did. tokens_used is
   * prompt + completion + these.
   */
  cached_prompt_tokens: z.int().optional(),
  reasoning_tokens: z.int().optional(),
  audio_tokens: z.int().optional(),
  /** Price of all tokens, whoever pays. */
  cost_micros: z.bigint(),
  /** Price of the paid (non-trial) tokens: what the billing target is charged. */
  billed_micros: z.bigint(),
  creator_share_micros: z.bigint(),
  platform_fee_micros: z.bigint(),
  creator_share_bp: z.int(),
  trial_tokens_used: z.int(),
  paid_tokens_used: z.int(),
  /** Tokens taken from dated grants (free, not billed); only when the record took some. */
  grant_tokens_used: z.int().optional(),
  decision: z.enum(DECISIONS),
  is_free_trial: z.boolean(),
  price_ids: z.array(z.string()),
  agents: z.record(z.string(), agentOutcomeSchema),
  balance_after: balanceSnapshotSchema,
  /** Whether the account can keep going after this record (it has available tokens left). */
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
   * A dated grant's expires_at was passed (by a record of the account or a tick) with tokens left: they
   * are forfeited. If nothing is left available the account cannot continue, as on exhaustion.
   */
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("grant_expired"),
    ...outputBaseShape,
    grant_id: z.string(),
    expires_at: z.string(),
    granted_tokens: z.int(),
    forfeited_tokens: z.int(),
    balance: balanceSnapshotSchema,
  }),
  /**
   * A periodic allowance passed one or more period boundaries (at this record or tick): the allowance
   * used is back to 0 and `carried_tokens` of what was left (`left_tokens`) carried into the new period.
   */
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("period_reset"),
    ...outputBaseShape,
    period_start: z.string(),
    /** Boundaries passed (more than 1 when periods went by without a record). */
    periods: z.int(),
    left_tokens: z.int(),
    carried_tokens: z.int(),
    /** Overdraft written off at this boundary (`carry_overage: false`); absent when nothing was. */
    written_off_tokens: z.int().optional(),
    balance: balanceSnapshotSchema,
  }),
  /** A usage record named the open hold: the usage was billed, the rest of the hold released. */
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("hold_settled"),
    ...outputBaseShape,
    chat_id: z.string(),
    hold_id: z.string(),
    /** What the hold reserved. */
    hold_tokens: z.int(),
    /** What the settling usage record used (and was billed for). */
    used_tokens: z.int(),
    /** What the hold reserved beyond the usage: hold_tokens - used_tokens, at least 0. */
    released_tokens: z.int(),
    /** Tokens the account's open holds reserve afterwards. */
    held_tokens: z.int(),
    balance: balanceSnapshotSchema,
  }),
  /** A release record gave the open hold back unused. */
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("hold_released"),
    ...outputBaseShape,
    chat_id: z.string(),
    hold_id: z.string(),
    hold_tokens: z.int(),
    held_tokens: z.int(),
    balance: balanceSnapshotSchema,
  }),
  /**
   * The account's event time passed the hold's expires_at (a record of the account or a tick) before
   * it was settled or released: its tokens are spendable again. `record_id` and `occurred_at` are the
   * record or tick that expired it.
   */
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("hold_expired"),
    ...outputBaseShape,
    chat_id: z.string(),
    hold_id: z.string(),
    hold_tokens: z.int(),
    expires_at: z.string(),
    held_tokens: z.int(),
    balance: balanceSnapshotSchema,
  }),
  /**
   * A usage or release record named a hold that is not open: it ended before (`ended`: settled,
   * released or expired; typically a release after expiry) or was never granted. Usage is billed all the
   * same; nothing else changes.
   */
  z.strictObject({
    kind: z.literal("budget_event"),
    event: z.literal("hold_not_open"),
    ...outputBaseShape,
    hold_id: z.string(),
    record_type: z.enum(["usage", "release"]),
    /** The hold id was granted before and has ended (still remembered), rather than unknown. */
    ended: z.boolean(),
  }),
  /**
   * A running session costs more than `multiple_bp` basis points of its workflow's average (the
   * workflow cost check, pipeline/core/cost-thresholds.ts). An alert, not billing: the average comes from ClickHouse at the
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

/**
 * The id consumers deduplicate budget events on (the `agentmeter-event-id` header): the same event
 * republished after a crash has the same id, and two events have different ids. One record can raise
 * several events of a kind (a credit makes every paused chat resumable, a tick expires the holds of many
 * accounts, one record crosses two thresholds or ends two grants), so the id names the account and what
 * the event is about besides the record and the kind.
 */
export function budgetEventIdOf(event: BudgetEvent): string {
  const about =
    "grant_id" in event
      ? event.grant_id
      : "hold_id" in event
        ? event.hold_id
        : "threshold_bp" in event
          ? String(event.threshold_bp)
          : "chat_id" in event
            ? event.chat_id
            : "";
  return `${idPart(event.record_id)}:${event.event}:${event.account_key}:${idPart(about)}`;
}

/**
 * Record, chat and hold ids may hold `:`, the id's separator: unescaped, two events of two accounts could
 * share an id (`r` about chat `c:exhausted:platform:v:c2` and `r:exhausted:platform:u:c` about `c2`). No id
 * may hold `%`, so `%3A` is unambiguous, and an id without `:` is written as it always was.
 */
function idPart(id: string): string {
  return id.includes(":") ? id.replaceAll(":", "%3A") : id;
}

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
  /** Present when the agent reported the class in any of the chat's records. */
  cached_prompt_tokens: z.int().optional(),
  reasoning_tokens: z.int().optional(),
  audio_tokens: z.int().optional(),
  total_response_time_ms: z.number(),
  message_count: z.int(),
  avg_response_time_ms: z.number().nullable(),
});

/** Emitted when a chat is finalized: its performance summary (tokens, cost and response time, in all and per agent). */
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
  record_type: z.enum(["usage", "credit", "session", "hold", "release", "void", "refund"]),
});
export type DuplicateIgnored = z.infer<typeof duplicateIgnoredSchema>;

/** Why the rules refuse a valid record (each is also an ERROR_CODES dead-letter reason). */
export const REJECTION_CODES = [
  "UNKNOWN_MODEL",
  "UNPRICED_TOKEN_CLASS",
  "CORRECTION_WINDOW_PASSED",
  "CORRECTION_TARGET_UNKNOWN",
  "CORRECTION_INVALID",
  "RECORD_TOO_LATE",
  "RECORD_TIME_SKEW",
  "RECORD_OUT_OF_RANGE",
  "RECORD_CREATOR_MISMATCH",
] as const;
export type RejectionCode = (typeof REJECTION_CODES)[number];

/** A valid record the rules refuse; the processor dead-letters it with this code. No state change. */
export const rejectedSchema = z.strictObject({
  kind: z.literal("rejected"),
  ...outputBaseShape,
  code: z.enum(REJECTION_CODES),
  reason: z.string(),
});
export type Rejected = z.infer<typeof rejectedSchema>;

/**
 * Why a hold was not granted:
 * - insufficient_tokens: allowance left + paid left - tokens already held is less than asked;
 * - too_many_holds: the account already has `holds.max_open` open holds (billing config);
 * - expired: expires_at is already past the account's event time;
 * - expiry_too_far: expires_at is more than `holds.max_seconds` after occurred_at;
 * - hold_id_ended: the hold id was granted before and has ended (a hold ends once);
 * - record_rejected: the hold record itself was rejected (the `rejected` output before says why).
 */
export const HOLD_DENIAL_REASONS = [
  "insufficient_tokens",
  "too_many_holds",
  "expired",
  "expiry_too_far",
  "hold_id_ended",
  "record_rejected",
] as const;
export type HoldDenialReason = (typeof HOLD_DENIAL_REASONS)[number];

/**
 * The answer to a hold record, one per hold record applied or rejected (so a waiting caller always
 * gets one): the processor publishes it on the reply topic keyed by `hold_id`.
 */
export const holdDecisionSchema = z.strictObject({
  kind: z.literal("hold_decision"),
  ...outputBaseShape,
  hold_id: z.string(),
  chat_id: z.string(),
  granted: z.boolean(),
  /**
   * The hold id was already open: this repeats its grant, nothing more is held (a retried reserve
   * with a new record_id). `tokens` is then the open hold's.
   */
  repeated: z.boolean(),
  /** Why not granted; null when granted. */
  reason: z.enum(HOLD_DENIAL_REASONS).nullable(),
  /** The denial in words (figures included); null when granted. */
  detail: z.string().nullable(),
  tokens: z.int(),
  expires_at: z.string(),
  /**
   * Tokens a new hold could still get after this decision: allowance left + paid left - held. Below
   * zero only when usage (which is never refused) overdrew the account.
   */
  available_tokens: z.int(),
  /** Tokens the account's open holds reserve after this decision. */
  held_tokens: z.int(),
});
export type HoldDecision = z.infer<typeof holdDecisionSchema>;

/**
 * A tick the rules refuse (its event time too far from its log time: it would expire holds early or
 * never). It belongs to no account, hence no account fields, and so is not an Output: only a batch
 * holding ticks can produce it (TopicOutput). The processor dead-letters it.
 */
export const tickRejectedSchema = z.strictObject({
  kind: z.literal("tick_rejected"),
  schema_version: version,
  record_id: z.string(),
  partition: z.int(),
  occurred_at: z.string(),
  code: z.enum(["RECORD_TIME_SKEW"]),
  reason: z.string(),
});
export type TickRejected = z.infer<typeof tickRejectedSchema>;

/**
 * A void or refund of one usage record, in the period it happens (never an edit of the usage record's
 * own rows). Figures are signed deltas: a reversal is negative, and billed = creator share + platform
 * fee holds for each adjustment as for each usage outcome. Money and tokens are attributed to the
 * usage record's app (`enterprise_id`, which a correction must name) and billing target.
 */
export const adjustmentSchema = z.strictObject({
  kind: z.literal("adjustment"),
  ...outputBaseShape,
  adjustment: z.enum(["void", "refund"]),
  target_record_id: z.string(),
  /** Event time of the usage record corrected. */
  target_occurred_at: z.string(),
  chat_id: z.string(),
  billing_target: z.enum(BILLING_TARGETS),
  /** Tokens given back to the allowance (negative: usage undone); 0 for a refund. */
  trial_tokens: z.int(),
  /** Tokens given back to the paid balance (negative); 0 for a refund. */
  paid_tokens: z.int(),
  /** Tokens given back to dated grants still there (negative); only when the voided record took some. */
  grant_tokens: z.int().optional(),
  /** The voided record's cost (negative); 0 for a refund. */
  cost_micros: z.bigint(),
  billed_micros: z.bigint(),
  creator_share_micros: z.bigint(),
  platform_fee_micros: z.bigint(),
  creator_share_bp: z.int(),
  balance_after: balanceSnapshotSchema,
  can_continue: z.boolean(),
});
export type Adjustment = z.infer<typeof adjustmentSchema>;

export const outputSchema = z.discriminatedUnion("kind", [
  usageOutcomeSchema,
  creditAppliedSchema,
  sessionEventSchema,
  budgetEventSchema,
  duplicateIgnoredSchema,
  sessionSummarySchema,
  rejectedSchema,
  holdDecisionSchema,
  adjustmentSchema,
]);
/** What the core emits for account records: every one names its account. */
export type Output = z.infer<typeof outputSchema>;
export type OutputKind = Output["kind"];

/** What the core emits for anything on the input topic, ticks included. */
export const topicOutputSchema = z.discriminatedUnion("kind", [...outputSchema.options, tickRejectedSchema]);
export type TopicOutput = z.infer<typeof topicOutputSchema>;
