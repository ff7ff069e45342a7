import type { BudgetEvent, DECISIONS } from "../../schemas/index.ts";
import {
  type AccountState,
  availableTokens,
  balanceSnapshot,
  paidTokens,
  trialRemaining,
} from "./account.ts";
import { BASIS_POINTS, BASIS_POINTS_BIG } from "./basis-points.ts";
import type { BillingConfig } from "./billing-config.ts";
import { planGrantDraw, takeGrants } from "./grants.ts";

/** Tokens of the effective dated grants, and what was burned of them. */
function grantCapacity(account: AccountState): { tokens: number; used: number } {
  const grants = account.grants;
  let tokens = 0;
  let used = 0;
  if (grants !== undefined) {
    for (const id in grants) {
      const grant = grants[id]!;
      if (!grant.active) continue;
      tokens += grant.tokens;
      used += grant.used;
    }
  }
  return { tokens, used };
}

export type Decision = (typeof DECISIONS)[number];
export type Draw = { trial_tokens: number; paid_tokens: number; grant_tokens: number; decision: Decision };
export type PlannedDraw = {
  trial_tokens: number;
  paid_tokens: number;
  /** Tokens from dated grants, and from which (burn order). */
  grant_tokens: number;
  grants: [string, number][];
};

/**
 * Usage draws dated grants first (in burn order, pipeline/core/grants.ts), then the trial (or platform
 * allowance), then the paid balance. Usage is metered after the fact, so it is never refused: what the
 * balance cannot cover drives it negative (overdraft). Takes a plan of planDraw (or plans one, at the
 * grants as they stand). Mutates `account`.
 */
export function drawTokens(account: AccountState, tokens: number, plan?: PlannedDraw): Draw {
  const planned = plan ?? planDraw(account, tokens);
  takeGrants(account, planned.grants);
  account.trial_used_tokens += planned.trial_tokens;
  account.paid_used_tokens += planned.paid_tokens;
  // Grant tokens are free, as trial tokens are: they decide as the trial does.
  const fromFree = planned.trial_tokens + planned.grant_tokens;
  return {
    trial_tokens: planned.trial_tokens,
    paid_tokens: planned.paid_tokens,
    grant_tokens: planned.grant_tokens,
    decision: decide(fromFree, planned.paid_tokens, account),
  };
}

/**
 * The split drawTokens would make, without mutating (for range checks before applying). `eventMs`: the
 * record's event time, at which grants start and expire; absent, the grants as they stand.
 */
export function planDraw(
  account: AccountState,
  tokens: number,
  eventMs?: number,
  /** The allowance left at eventMs when a period boundary resets it first (periods.ts trialRemainingAt). */
  trialLeft?: number,
): PlannedDraw {
  const fromGrants =
    account.grants === undefined
      ? { total: 0, draws: [] }
      : planGrantDraw(account, tokens, eventMs ?? Number.NEGATIVE_INFINITY);
  const rest = tokens - fromGrants.total;
  const fromTrial = Math.min(rest, trialLeft ?? trialRemaining(account));
  return {
    trial_tokens: fromTrial,
    paid_tokens: rest - fromTrial,
    grant_tokens: fromGrants.total,
    grants: fromGrants.draws,
  };
}

function decide(fromFree: number, fromPaid: number, after: AccountState): Decision {
  if (fromPaid > 0 && paidTokens(after) < 0) return "overdraft";
  if (fromPaid === 0) return "trial";
  return fromFree === 0 ? "paid" : "mixed";
}

/** Share of (allowance + credits) used, in basis points; everything counts as crossed at capacity 0. */
export function usedBasisPoints(account: AccountState): number {
  // Effective dated grants count as capacity, and what was burned of them as used.
  const grants = grantCapacity(account);
  const usedTokens = account.trial_used_tokens + account.paid_used_tokens + grants.used;
  const carried = account.period === undefined ? 0 : account.period.carried_tokens;
  const capacityTokens = account.allowance_tokens + carried + account.credited_tokens + grants.tokens;
  // Safe-integer fast path: below 2^52 every operand, the product and q x capacity are exact, and the
  // remainder corrects the one ulp the float quotient may be off, so q is floor(used x BASIS_POINTS / capacity).
  const scaled = usedTokens * BASIS_POINTS;
  if (
    account.trial_used_tokens >= 0 &&
    account.paid_used_tokens >= 0 &&
    scaled < 2 ** 52 &&
    capacityTokens > 0 &&
    capacityTokens < 2 ** 52
  ) {
    let q = Math.floor(scaled / capacityTokens);
    const rest = scaled - q * capacityTokens;
    if (rest < 0) q -= 1;
    else if (rest >= capacityTokens) q += 1;
    return q;
  }
  const used = BigInt(account.trial_used_tokens) + BigInt(account.paid_used_tokens) + BigInt(grants.used);
  const capacity =
    BigInt(account.allowance_tokens) +
    BigInt(carried) +
    BigInt(account.credited_tokens) +
    BigInt(grants.tokens);
  if (capacity === 0n) return used === 0n ? 0 : Number.MAX_SAFE_INTEGER;
  return Number((used * BASIS_POINTS_BIG) / capacity);
}

type EventBase = Omit<Extract<BudgetEvent, { event: "overdraft" }>, "kind" | "event" | "balance">;

/**
 * True when thresholdEvents would raise nothing and leave the raised list as it is: every raised
 * threshold is still reached, the list is sorted without repeats, and every configured threshold
 * reached is already raised. The usual case, decided without allocating.
 */
function nothingToRaiseOrRearm(
  raised: readonly number[],
  thresholds: readonly number[],
  usedBp: number,
): boolean {
  for (let i = 0; i < raised.length; i++) {
    if (usedBp < raised[i]! || (i > 0 && raised[i - 1]! >= raised[i]!)) return false;
  }
  for (const threshold of thresholds) {
    if (usedBp >= threshold && !raised.includes(threshold)) return false;
  }
  return true;
}

/**
 * Raises each configured threshold once when usage reaches it, and re-arms the thresholds usage is
 * back under (after a credit or a larger budget). Mutates `account`.
 */
export function thresholdEvents(
  account: AccountState,
  config: BillingConfig,
  base: EventBase,
): BudgetEvent[] {
  const usedBp = usedBasisPoints(account);
  if (nothingToRaiseOrRearm(account.thresholds_raised_bp, config.thresholds_bp, usedBp)) return [];
  const raised = account.thresholds_raised_bp.filter((threshold) => usedBp >= threshold);
  const events: BudgetEvent[] = [];
  for (const threshold of config.thresholds_bp) {
    if (usedBp < threshold || raised.includes(threshold)) continue;
    raised.push(threshold);
    events.push({
      kind: "budget_event",
      event: "threshold_reached",
      ...base,
      threshold_bp: threshold,
      used_bp: usedBp,
      balance: balanceSnapshot(account),
    });
  }
  account.thresholds_raised_bp = raised.sort((a, b) => a - b);
  return events;
}

/**
 * Re-arms the thresholds usage is back under, raising none (a grant that starts). Mutates `account`.
 */
export function rearmThresholds(account: AccountState): void {
  const raised = account.thresholds_raised_bp;
  if (raised.length === 0) return;
  const usedBp = usedBasisPoints(account);
  if (raised.every((threshold) => usedBp >= threshold)) return;
  account.thresholds_raised_bp = raised.filter((threshold) => usedBp >= threshold);
}

/** One `overdraft` event each time the paid balance goes below zero from zero or above. */
export function overdraftEvents(account: AccountState, base: EventBase): BudgetEvent[] {
  const negative = paidTokens(account) < 0;
  const enters = negative && !account.in_overdraft;
  account.in_overdraft = negative;
  return enters
    ? [{ kind: "budget_event", event: "overdraft", ...base, balance: balanceSnapshot(account) }]
    : [];
}

/**
 * Keeps every paused chat's `can_resume` equal to "the account can continue": when a credit makes
 * the account positive again, each paused chat becomes resumable (one event per chat); when the
 * account is exhausted, none is. Every record leaves that invariant true, so the chats are scanned
 * only when "can continue" changed during the record (`couldContinue` is its value before): per-record
 * work does not grow with the number of open chats. Mutates `account`.
 */
export function resumableEvents(
  account: AccountState,
  base: EventBase,
  couldContinue: boolean,
): BudgetEvent[] {
  const resumable = availableTokens(account) > 0;
  if (resumable === couldContinue) return [];
  const changed: string[] = [];
  for (const [chatId, chat] of Object.entries(account.chats)) {
    if (!chat.paused || chat.can_resume === resumable) continue;
    chat.can_resume = resumable;
    changed.push(chatId);
  }
  if (!resumable) return [];
  return changed.sort().map((chatId) => ({
    kind: "budget_event",
    event: "resumable",
    ...base,
    chat_id: chatId,
    balance: balanceSnapshot(account),
  }));
}
