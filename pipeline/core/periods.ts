import { type AllowancePeriod, epochMs, type Output, SCHEMA_VERSION } from "../../schemas/index.ts";
import { type AccountState, balanceSnapshot, canContinue, paidTokens } from "./account.ts";
import type { BillingConfig } from "./billing-config.ts";
import { resumableEvents, thresholdEvents } from "./budget.ts";
import type { OutputBase } from "./output-base.ts";

/**
 * Budget periods: an allowance that resets at every period boundary (config `allowance_period`, per
 * level). The first record (or tick) of the account at or after a boundary resets it: what was left of
 * the allowance (bounded by the rollover bounds) is carried into the new period, and the allowance used
 * goes back to 0. Boundaries are on a UTC grid from the anchor, so they depend on event time only and a
 * replay resets at the same record.
 */

const DAY_MS = 86_400_000;

export function periodOf(account: AccountState, config: BillingConfig): AllowancePeriod | null {
  return config.allowance_period[account.level];
}

/** The index of the period holding `ms` (0 is the one starting at the anchor; negative before it). */
function periodIndex(spec: AllowancePeriod, ms: number): number {
  const anchor = epochMs(spec.anchor);
  if (spec.every !== "month") {
    const step = spec.every === "day" ? DAY_MS : 7 * DAY_MS;
    return Math.floor((ms - anchor) / step);
  }
  const a = new Date(anchor);
  const t = new Date(ms);
  let k = (t.getUTCFullYear() - a.getUTCFullYear()) * 12 + (t.getUTCMonth() - a.getUTCMonth());
  if (periodStartMs(spec, k) > ms) k -= 1;
  return k;
}

/** Start of period `k`, epoch ms. */
function periodStartMs(spec: AllowancePeriod, k: number): number {
  const anchor = epochMs(spec.anchor);
  if (spec.every === "day") return anchor + k * DAY_MS;
  if (spec.every === "week") return anchor + k * 7 * DAY_MS;
  const a = new Date(anchor);
  return Date.UTC(
    a.getUTCFullYear(),
    a.getUTCMonth() + k,
    a.getUTCDate(),
    a.getUTCHours(),
    a.getUTCMinutes(),
    a.getUTCSeconds(),
    a.getUTCMilliseconds(),
  );
}

/** The account's period on first sight: the one holding the event time, nothing carried. */
export function openPeriod(account: AccountState, config: BillingConfig, eventMs: number): void {
  const spec = periodOf(account, config);
  if (spec === null || account.period !== undefined) return;
  account.period = {
    start: new Date(periodStartMs(spec, periodIndex(spec, eventMs))).toISOString(),
    carried_tokens: 0,
  };
}

/** The next boundary of the account's period, epoch ms, or null when its allowance is not periodic. */
export function nextPeriodBoundary(account: AccountState, config: BillingConfig): number | null {
  const spec = periodOf(account, config);
  if (spec === null || account.period === undefined) return null;
  return periodStartMs(spec, periodIndex(spec, epochMs(account.period.start)) + 1);
}

type Reset = { from: number; to: number; carried: number; leftAtEnd: number };

/**
 * The index and end of the period starting at `start`, remembered for the last one asked: every usage
 * record asks for its account's period twice, and accounts mostly share the current one (monthly
 * indexes take four Date objects a call).
 */
let lastPeriod: { spec: AllowancePeriod; start: string; index: number; endMs: number } | undefined;
function periodFrom(spec: AllowancePeriod, start: string): { index: number; endMs: number } {
  if (lastPeriod === undefined || lastPeriod.spec !== spec || lastPeriod.start !== start) {
    const index = periodIndex(spec, epochMs(start));
    lastPeriod = { spec, start, index, endMs: periodStartMs(spec, index + 1) };
  }
  return lastPeriod;
}

/** The reset event time `eventMs` would make (pure), or undefined when it is still in the period. */
function resetAt(account: AccountState, spec: AllowancePeriod, eventMs: number): Reset | undefined {
  if (account.period === undefined) return undefined;
  const period = periodFrom(spec, account.period.start);
  if (eventMs < period.endMs) return undefined;
  const from = period.index;
  const to = periodIndex(spec, eventMs);
  if (to <= from) return undefined;
  let carried = account.period.carried_tokens;
  let used = account.trial_used_tokens;
  const leftAtEnd = Math.max(0, account.allowance_tokens + carried - used);
  // Each boundary carries what its period left; after the first, a period without traffic left all of
  // it. The carry settles within a few boundaries (it is clamped), so the loop stops early.
  for (let k = from; k < to; k++) {
    const left = Math.max(0, account.allowance_tokens + carried - used);
    const next = Math.min(spec.rollover_max_tokens, Math.max(spec.rollover_min_tokens, left));
    used = 0;
    if (next === carried && k > from) break;
    carried = next;
  }
  return { from, to, carried, leftAtEnd };
}

/**
 * The allowance left at event time `eventMs`, as it will be once the period is brought to it (a usage
 * record's draw is planned before its effect, and must match it).
 */
export function trialRemainingAt(
  account: AccountState,
  config: BillingConfig,
  eventMs: number,
): number | undefined {
  const spec = periodOf(account, config);
  if (spec === null) return undefined;
  const reset = resetAt(account, spec, eventMs);
  return reset === undefined ? undefined : account.allowance_tokens + reset.carried;
}

type Cause = { record_id: string; occurred_at: string };

/**
 * Every overdraft written off so far, what voids took back not deducted: a usage memo keeps it as of its
 * draw, so a void knows which write-offs came after the record. States from before the field: the
 * running total, which is what they had.
 */
export function writtenOffEver(account: AccountState): number {
  return account.overage_written_off_ever_tokens ?? account.overage_written_off_tokens ?? 0;
}

/** Brings a paid balance below zero back to zero (a period with `carry_overage: false`); returns the tokens. */
function writeOffOverdraft(account: AccountState): number {
  const overdraft = -paidTokens(account);
  if (overdraft <= 0) return 0;
  account.paid_used_tokens -= overdraft;
  account.overage_written_off_ever_tokens = writtenOffEver(account) + overdraft;
  account.overage_written_off_tokens = (account.overage_written_off_tokens ?? 0) + overdraft;
  account.in_overdraft = false;
  return overdraft;
}

/**
 * The paid tokens a void of a record of an ended period gives back to the balance: what the write-offs
 * since did not already forgive. Without the record, the overdraft written off would have been smaller by
 * up to its paid tokens and the balance after the boundary the same, so those come off the write-off
 * first. Mutates the write-off; returns the tokens for the balance.
 */
export function paidReturnAfterWriteOff(
  account: AccountState,
  paidTokensOfRecord: number,
  writtenOffBeforeDraw: number,
): number {
  const writtenOff = account.overage_written_off_tokens ?? 0;
  // Only a write-off at a boundary after the record drew can hold its tokens: one before it (a debt of an
  // earlier period) owes nothing to the record.
  const sinceDraw = Math.max(0, writtenOffEver(account) - writtenOffBeforeDraw);
  const forgiven = Math.min(writtenOff, sinceDraw, paidTokensOfRecord);
  if (forgiven > 0) account.overage_written_off_tokens = writtenOff - forgiven;
  return paidTokensOfRecord - forgiven;
}

/**
 * Resets the allowance at each boundary event time `eventMs` reached or passed: left = allowance +
 * carried - used, carried = left within the rollover bounds (once per boundary passed, so two periods
 * with no traffic carry twice, which the bounds keep finite), used = 0. Raises `period_reset`, re-arms
 * thresholds and makes paused chats resumable when the new period lets the account continue. Mutates.
 */
export function advancePeriod(
  account: AccountState,
  config: BillingConfig,
  eventMs: number,
  cause: Cause,
  outputs: Output[],
  enterpriseId: string,
): void {
  const spec = periodOf(account, config);
  if (spec === null) return;
  if (account.period === undefined) {
    openPeriod(account, config, eventMs);
    return;
  }
  const reset = resetAt(account, spec, eventMs);
  if (reset === undefined) return;
  const { from, to, carried, leftAtEnd } = reset;
  const couldContinue = canContinue(account);
  account.trial_used_tokens = 0;
  account.period = { start: new Date(periodStartMs(spec, to)).toISOString(), carried_tokens: carried };
  const writtenOff = spec.carry_overage ? 0 : writeOffOverdraft(account);
  const base = {
    schema_version: SCHEMA_VERSION,
    record_id: cause.record_id,
    account_key: account.account_key,
    level: account.level,
    enterprise_id: enterpriseId,
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
    occurred_at: cause.occurred_at,
  } as OutputBase;
  outputs.push({
    kind: "budget_event",
    event: "period_reset",
    ...base,
    period_start: account.period.start,
    periods: to - from,
    left_tokens: leftAtEnd,
    carried_tokens: carried,
    ...(writtenOff > 0 ? { written_off_tokens: writtenOff } : {}),
    balance: balanceSnapshot(account),
  });
  for (const event of thresholdEvents(account, config, base)) outputs.push(event);
  for (const event of resumableEvents(account, base, couldContinue)) outputs.push(event);
}
