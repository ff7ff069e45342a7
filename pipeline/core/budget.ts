import type { BudgetEvent, DECISIONS } from "../../schemas/index.ts";
import {
  type AccountState,
  availableTokens,
  balanceSnapshot,
  paidTokens,
  trialRemaining,
} from "./account.ts";
import type { BillingConfig } from "./config.ts";
import { sortedKeys } from "./own.ts";

export type Decision = (typeof DECISIONS)[number];
export type Draw = { trial_tokens: number; paid_tokens: number; decision: Decision };

/**
 * Usage draws the trial (or platform allowance) first, then the paid balance. Usage is metered
 * after the fact, so it is never refused: what the balance cannot cover drives it negative
 * (overdraft). Mutates `account`.
 */
export function drawTokens(account: AccountState, tokens: number): Draw {
  const fromTrial = Math.min(tokens, trialRemaining(account));
  const fromPaid = tokens - fromTrial;
  account.trial_used_tokens += fromTrial;
  account.paid_used_tokens += fromPaid;
  return { trial_tokens: fromTrial, paid_tokens: fromPaid, decision: decide(fromTrial, fromPaid, account) };
}

function decide(fromTrial: number, fromPaid: number, after: AccountState): Decision {
  if (fromPaid > 0 && paidTokens(after) < 0) return "overdraft";
  if (fromPaid === 0) return "trial";
  return fromTrial === 0 ? "paid" : "mixed";
}

/** Share of (allowance + credits) used, in basis points; everything counts as crossed at capacity 0. */
export function usedBasisPoints(account: AccountState): number {
  const used = BigInt(account.trial_used_tokens + account.paid_used_tokens);
  const capacity = BigInt(account.allowance_tokens + account.credited_tokens);
  if (capacity === 0n) return used === 0n ? 0 : Number.MAX_SAFE_INTEGER;
  return Number((used * 10_000n) / capacity);
}

type EventBase = Omit<Extract<BudgetEvent, { event: "overdraft" }>, "kind" | "event" | "balance">;

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
 * account is exhausted, none is. Mutates `account`.
 */
export function resumableEvents(account: AccountState, base: EventBase): BudgetEvent[] {
  const resumable = availableTokens(account) > 0;
  const events: BudgetEvent[] = [];
  for (const chatId of sortedKeys(account.chats)) {
    const chat = account.chats[chatId]!;
    if (!chat.paused || chat.can_resume === resumable) continue;
    chat.can_resume = resumable;
    if (resumable) {
      events.push({
        kind: "budget_event",
        event: "resumable",
        ...base,
        chat_id: chatId,
        balance: balanceSnapshot(account),
      });
    }
  }
  return events;
}
