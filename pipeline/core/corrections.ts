import {
  epochMs,
  type Output,
  type RefundRecord,
  type RejectionCode,
  type VoidRecord,
} from "../../schemas/index.ts";
import { type AccountState, balanceSnapshot, canContinue } from "./account.ts";
import { BASIS_POINTS_BIG } from "./basis-points.ts";
import type { BillingConfig } from "./billing-config.ts";
import { boundedMap } from "./bson-size-bound.ts";
import { overdraftEvents, resumableEvents, thresholdEvents } from "./budget.ts";
import { returnGrants } from "./grants.ts";
import type { LayeredMap } from "./layered-map.ts";
import type { OutputBase } from "./output-base.ts";
import { paidReturnAfterWriteOff } from "./periods.ts";
import { splitRevenue } from "./split.ts";

/**
 * Voids and refunds. A correction never edits what a usage record did: it adds an adjustment (an output,
 * and the account's reversed totals) after it. To give back exactly what a usage record took, the
 * account remembers, for each usage record still within the correction window, what it drew and billed.
 */

/**
 * What one usage record took, remembered while it may be corrected. Replaced, never mutated, once
 * stored (a copy of the account shares it).
 */
export type UsageMemo = {
  /** Event time of the usage record, epoch ms. */
  at_ms: number;
  /** The app the usage record named (a creator's platform account spans apps). */
  enterprise_id: string;
  chat_id: string;
  trial_tokens: number;
  paid_tokens: number;
  cost_micros: bigint;
  billed_micros: bigint;
  /** The creator share rate the record was split at: the creator got floor(billed x bp / 10000). */
  creator_share_bp: number;
  /** Money refunded so far. */
  refunded_micros: bigint;
  voided: boolean;
  /** Tokens the record took from dated grants, by grant id; absent when none. */
  grants?: Record<string, number>;
  /**
   * The account's event time when the record drew, epoch ms, when later than `at_ms`: a record that
   * arrives after its account has moved on (a later record, a tick past a period boundary) draws from
   * the period the account is in, not the one its own time falls in. Absent when it is `at_ms`.
   */
  drawn_ms?: number;
  /**
   * The account's write-offs so far (`writtenOffEver`) when the record drew, when any: a void of the
   * record takes its paid tokens back only from write-offs made after it. Absent when 0, and on memos
   * from before the field (then every write-off counts, as it did).
   */
  written_off_before?: number;
};

/** An account's corrections: the usage records it can still correct, and the sums of every adjustment. */
export type CorrectionsState = {
  /** Usage record id -> its memo, in the order applied. A Map for the reason DedupeState.seen is one. */
  usage: LayeredMap<string, UsageMemo>;
  count: number;
  oldest_ms: number | null;
  /** Tokens given back by voids (allowance and paid). */
  voided_tokens: number;
  /** Cost of the voided records (what they were priced at, whoever paid). */
  voided_cost_micros: bigint;
  /** Billed amount, creator share and platform fee reversed by voids and refunds; billed = creator + platform. */
  reversed_billed_micros: bigint;
  reversed_creator_share_micros: bigint;
  reversed_platform_fee_micros: bigint;
  /** The part of reversed_billed_micros that refunds returned (the rest is voids). */
  refunded_micros: bigint;
};

export function emptyCorrections(): CorrectionsState {
  return {
    usage: boundedMap(),
    count: 0,
    oldest_ms: null,
    voided_tokens: 0,
    voided_cost_micros: 0n,
    reversed_billed_micros: 0n,
    reversed_creator_share_micros: 0n,
    reversed_platform_fee_micros: 0n,
    refunded_micros: 0n,
  };
}

function windowMs(config: BillingConfig): number {
  return config.corrections.window_seconds * 1000;
}

/**
 * Remembers an applied usage record for corrections, then forgets what the window no longer covers
 * (swept when the oldest is a sixteenth of a window past it, so not on every record; which memos are
 * kept past the window never changes an answer, see correctionRefusal) and, past max_remembered, the
 * oldest. Mutates `account`. Nothing is remembered when corrections are off (window 0).
 */
export function rememberUsage(
  account: AccountState,
  recordId: string,
  memo: UsageMemo,
  config: BillingConfig,
): void {
  if (config.corrections.window_seconds === 0) return;
  const corrections = account.corrections ?? emptyCorrections();
  account.corrections = corrections;
  if (!corrections.usage.has(recordId)) corrections.count += 1;
  corrections.usage.set(recordId, memo);
  corrections.oldest_ms =
    corrections.oldest_ms === null ? memo.at_ms : Math.min(corrections.oldest_ms, memo.at_ms);
  const newest =
    account.dedupe.max_event_ms === null ? memo.at_ms : Math.max(account.dedupe.max_event_ms, memo.at_ms);
  const cutoff = newest - windowMs(config);
  if (corrections.oldest_ms <= cutoff - windowMs(config) / 16) sweep(corrections, cutoff);
  if (corrections.count > config.corrections.max_remembered) forgetOldest(corrections, config);
}

function sweep(corrections: CorrectionsState, cutoff: number): void {
  let oldest: number | null = null;
  for (const [id, memo] of corrections.usage) {
    const at = memo.at_ms;
    if (at <= cutoff) {
      corrections.usage.delete(id);
      corrections.count -= 1;
    } else if (oldest === null || at < oldest) {
      oldest = at;
    }
  }
  corrections.oldest_ms = oldest;
}

function forgetOldest(corrections: CorrectionsState, config: BillingConfig): void {
  const keep = Math.floor(config.corrections.max_remembered * 0.9);
  const byAge = [...corrections.usage].sort(([idA, a], [idB, b]) =>
    a.at_ms !== b.at_ms ? a.at_ms - b.at_ms : idA < idB ? -1 : idA > idB ? 1 : 0,
  );
  const drop = byAge.length - keep;
  for (const [id] of byAge.slice(0, drop)) corrections.usage.delete(id);
  corrections.count = keep;
  corrections.oldest_ms = byAge[drop]?.[1].at_ms ?? null;
}

/**
 * The paid tokens a void gives back: those whose money no refund has returned yet. Billed money is the
 * paid tokens' price (billed = cost x paid / tokens), so a refund of a share of it pays back that share of
 * the paid tokens, and the void returns only the rest, rounded down: the payer never gets a paid token
 * back twice, once as money and once as tokens. No refund: every paid token; all refunded: none.
 */
function paidTokensNotRefunded(memo: UsageMemo): number {
  if (memo.refunded_micros === 0n || memo.billed_micros <= 0n) return memo.paid_tokens;
  const left = memo.billed_micros - memo.refunded_micros;
  return Number((BigInt(memo.paid_tokens) * left) / memo.billed_micros);
}

/** Creator share of `refunded` micros of a record split at `bp`: the split's floor, on the running total. */
function creatorPart(refunded: bigint, bp: number): bigint {
  return (refunded * BigInt(bp)) / BASIS_POINTS_BIG;
}

type Refusal = { code: RejectionCode; reason: string };

/**
 * Why a correction cannot apply, before anything changes; undefined when it can. The window is decided
 * on event times only (the target's, against the account's newest including this record), never on
 * whether a memo happens to be swept yet, so a replay answers the same.
 */
export function correctionRefusal(
  account: AccountState,
  record: VoidRecord | RefundRecord,
  occurredMs: number,
  config: BillingConfig,
): Refusal | undefined {
  const target = record.target_record_id;
  const newest =
    account.dedupe.max_event_ms === null ? occurredMs : Math.max(account.dedupe.max_event_ms, occurredMs);
  const cutoff = newest - windowMs(config);
  const memo = account.corrections?.usage.get(target);
  const seenAt = account.dedupe.seen.get(target);
  const atMs = memo?.at_ms ?? seenAt;
  if (atMs !== undefined && atMs <= cutoff) {
    return {
      code: "CORRECTION_WINDOW_PASSED",
      reason: `${record.type} of ${target}: its event time ${new Date(atMs).toISOString()} is ${config.corrections.window_seconds}s or more before the account's newest event ${new Date(newest).toISOString()} (corrections.window_seconds)`,
    };
  }
  if (memo === undefined) {
    return {
      code: "CORRECTION_TARGET_UNKNOWN",
      reason: `${record.type} of ${target}: account ${account.account_key} holds no usage record ${target} to correct (never applied, not a usage record, or forgotten past corrections.max_remembered)`,
    };
  }
  if (memo.enterprise_id !== record.enterprise_id) {
    return {
      code: "CORRECTION_INVALID",
      reason: `${record.type} of ${target} names app ${record.enterprise_id}, the usage record was app ${memo.enterprise_id}`,
    };
  }
  if (memo.voided) {
    return { code: "CORRECTION_INVALID", reason: `${record.type} of ${target}: it is already voided` };
  }
  if (record.type === "refund") {
    const left = memo.billed_micros - memo.refunded_micros;
    if (record.amount_micros > left) {
      return {
        code: "CORRECTION_INVALID",
        reason: `refund of ${record.amount_micros} micros on ${target}: only ${left} of its ${memo.billed_micros} billed micros are left to refund`,
      };
    }
  }
  return undefined;
}

/**
 * Applies a void or refund that correctionRefusal accepted: the memo is replaced, the account's reversed
 * totals grow, and one `adjustment` output says what was reversed (signed: a reversal is negative).
 * A void gives the tokens back, so thresholds re-arm and paused chats may become resumable as after a
 * credit. Mutates `account`.
 */
export function applyCorrection(
  account: AccountState,
  record: VoidRecord | RefundRecord,
  config: BillingConfig,
  outputs: Output[],
  base: OutputBase,
): void {
  const corrections = account.corrections!;
  const memo = corrections.usage.get(record.target_record_id)!;
  const couldContinue = canContinue(account);
  const creatorBefore = creatorPart(memo.refunded_micros, memo.creator_share_bp);
  let billed: bigint;
  let creator: bigint;
  let trial = 0;
  let paid = 0;
  let grant = 0;
  let cost = 0n;
  if (record.type === "void") {
    billed = memo.billed_micros - memo.refunded_micros;
    creator = splitRevenue(memo.billed_micros, memo.creator_share_bp).creator_share_micros - creatorBefore;
    // Allowance tokens of a period that has ended went with it: only the current period's come back.
    // The period is the one the record drew from, which a late record's own time does not tell.
    const periodStart = account.period === undefined ? undefined : epochMs(account.period.start);
    const endedPeriod = periodStart !== undefined && (memo.drawn_ms ?? memo.at_ms) < periodStart;
    trial = endedPeriod ? 0 : memo.trial_tokens;
    const unrefunded = paidTokensNotRefunded(memo);
    // Paid tokens of an ended period that a write-off already forgave (carry_overage: false) stay forgiven.
    paid = endedPeriod
      ? paidReturnAfterWriteOff(account, unrefunded, memo.written_off_before ?? 0)
      : unrefunded;
    cost = memo.cost_micros;
    account.trial_used_tokens -= trial;
    account.paid_used_tokens -= paid;
    if (memo.grants !== undefined) grant = returnGrants(account, memo.grants);
    corrections.voided_tokens += trial + paid + grant;
    corrections.voided_cost_micros += cost;
    corrections.usage.set(record.target_record_id, { ...memo, voided: true });
  } else {
    billed = record.amount_micros;
    const refunded = memo.refunded_micros + billed;
    creator = creatorPart(refunded, memo.creator_share_bp) - creatorBefore;
    corrections.refunded_micros += billed;
    corrections.usage.set(record.target_record_id, { ...memo, refunded_micros: refunded });
  }
  const platform = billed - creator;
  corrections.reversed_billed_micros += billed;
  corrections.reversed_creator_share_micros += creator;
  corrections.reversed_platform_fee_micros += platform;
  outputs.push({
    kind: "adjustment",
    ...base,
    adjustment: record.type,
    target_record_id: record.target_record_id,
    target_occurred_at: new Date(memo.at_ms).toISOString(),
    chat_id: memo.chat_id,
    billing_target: account.level === "platform" ? "mozaiks_user" : "platform_user",
    // 0 - n, not -n: a refund's 0 tokens must not be -0 (deepEqual and Object.is tell them apart).
    trial_tokens: 0 - trial,
    paid_tokens: 0 - paid,
    ...(memo.grants === undefined ? {} : { grant_tokens: 0 - grant }),
    cost_micros: -cost,
    billed_micros: -billed,
    creator_share_micros: -creator,
    platform_fee_micros: -platform,
    creator_share_bp: memo.creator_share_bp,
    balance_after: balanceSnapshot(account),
    can_continue: canContinue(account),
  });
  if (record.type === "void") {
    outputs.push(
      ...thresholdEvents(account, config, base),
      ...overdraftEvents(account, base),
      ...resumableEvents(account, base, couldContinue),
    );
  }
}
