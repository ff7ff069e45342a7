import type { BalanceSnapshot, InputRecord, Level } from "../../schemas/index.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import type { BillingConfig } from "./billing-config.ts";
import { boundedMap } from "./bson-size-bound.ts";
import type { CorrectionsState } from "./corrections.ts";
import type { DedupeState } from "./dedupe.ts";
import { copyMap, emptyMap, ownValue } from "./own.ts";

/** Per-agent running totals of an open chat; they become the per-agent figures of the chat's summary. */
export type AgentTotals = {
  prompt_tokens: number;
  completion_tokens: number;
  /** The token classes, present once the agent has reported one (so chats without them store as before). */
  cached_prompt_tokens?: number;
  reasoning_tokens?: number;
  audio_tokens?: number;
  response_time_ms: number;
  message_count: number;
};

/** An open chat. Finalized chats leave the state (their summary is an output). */
export type ChatState = {
  session_id: string;
  workflow_name: string;
  started_at: string;
  last_event_at: string;
  paused: boolean;
  pause_reason: string | null;
  can_resume: boolean;
  total_tokens: number;
  cost_micros: bigint;
  billed_micros: bigint;
  agents: Record<string, AgentTotals>;
};

/**
 * An open hold: tokens reserved for one agent turn until it is settled, released or expires. Never
 * mutated once granted (a copy of the account shares it).
 */
export type HoldState = {
  chat_id: string;
  tokens: number;
  expires_at: string;
  /** The hold record that opened it, and its event time. */
  record_id: string;
  occurred_at: string;
  /** The app the hold record named: a creator's platform account spans apps, and its events name one. */
  enterprise_id: string;
};

/**
 * A grant (pipeline/core/grants.ts): free tokens burned before the allowance and the paid balance.
 * Replaced, never mutated, once stored (a copy of the account shares it).
 */
export type GrantState = {
  tokens: number;
  used: number;
  priority: number;
  /** From when it may be spent (the credit's effective_at, else its occurred_at). */
  effective_at: string;
  expires_at: string | null;
  /** The credit's occurred_at: "oldest" in the burn order. */
  granted_at: string;
  /** The app the credit named (a creator's platform account spans apps). */
  enterprise_id: string;
  /** Effective at the account's event time (set when event time reaches effective_at). */
  active: boolean;
};

/**
 * Everything the rules know about one account; plain data (no Map, Set or class) because the
 * processor stores it as one MongoDB document and reloads it after a crash. Paid tokens are derived:
 * credited_tokens - paid_used_tokens (negative in overdraft).
 */
export type AccountState = {
  state_version: 1;
  account_key: string;
  level: Level;
  /** The app for app accounts; null for a creator's platform account (it spans apps). */
  enterprise_id: string | null;
  /**
   * Platform: the creator. App: the app's creator, bound by the account's first record (or pinned by
   * config `apps`); a record naming another is rejected (RECORD_CREATOR_MISMATCH).
   */
  mozaiks_user_id: string;
  platform_user_id: string | null;
  /** Trial allowance (app) or platform allowance (creator), in tokens. */
  allowance_tokens: number;
  trial_used_tokens: number;
  /** Sum of top-ups, in tokens (and of grants naming no date applied before grants were all free). */
  credited_tokens: number;
  paid_used_tokens: number;
  tokens_used: number;
  cost_micros: bigint;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
  /** Sum of `amount_micros` of top-ups. */
  paid_amount_micros: bigint;
  /** Thresholds already announced; a threshold is re-armed when usage falls below it again. */
  thresholds_raised_bp: number[];
  in_overdraft: boolean;
  chats: Record<string, ChatState>;
  dedupe: DedupeState;
  /** Event time of the last record applied. */
  last_event_at: string | null;
  /**
   * Open holds by hold id (pipeline/core/holds.ts). Absent while the account has none, so the document
   * of an account that never holds is as it was before holds existed (and such stored documents load).
   */
  holds?: Record<string, HoldState>;
  /**
   * Usage records still correctable and the sums of voids and refunds (pipeline/core/corrections.ts).
   * Absent until the first usage record: stored documents from before corrections load unchanged.
   */
  corrections?: CorrectionsState;
  /** Dated grants by the credit's record_id; absent while the account has none (documents as before). */
  grants?: Record<string, GrantState>;
  /**
   * The current allowance period when the level's allowance is periodic (config allowance_period):
   * its start and the tokens carried into it (part of the allowance left). Absent otherwise.
   */
  period?: { start: string; carried_tokens: number };
  /**
   * Overdraft written off at period boundaries (a period with `carry_overage: false`), less what voids of
   * records of ended periods took back from it since. Absent until the first write-off.
   */
  overage_written_off_tokens?: number;
  /** Every overdraft written off, voids not deducted (pipeline/core/periods.ts `writtenOffEver`). */
  overage_written_off_ever_tokens?: number;
};

/** Whose account a record touches, and that account's defaults on first sight. */
export function newAccount(record: InputRecord, config: BillingConfig): AccountState {
  const app = record.level === "app_usage";
  return {
    state_version: 1,
    account_key: accountKeyOf(record),
    level: record.level,
    enterprise_id: app ? record.enterprise_id : null,
    mozaiks_user_id: record.mozaiks_user_id,
    platform_user_id: app ? (record.platform_user_id ?? null) : null,
    allowance_tokens: app
      ? (ownValue(config.app_trial_tokens.per_app, record.enterprise_id) ?? config.app_trial_tokens.default)
      : config.platform_allowance_tokens,
    trial_used_tokens: 0,
    credited_tokens: 0,
    paid_used_tokens: 0,
    tokens_used: 0,
    cost_micros: 0n,
    billed_micros: 0n,
    creator_share_micros: 0n,
    platform_fee_micros: 0n,
    paid_amount_micros: 0n,
    thresholds_raised_bp: [],
    in_overdraft: false,
    chats: emptyMap(),
    dedupe: {
      seen: boundedMap(),
      count: 0,
      max_event_ms: null,
      oldest_ms: null,
      forgotten_in_horizon: 0,
      plain_operator_ids_through_ms: null,
    },
    last_event_at: null,
  };
}

function copyTotals(totals: AgentTotals): AgentTotals {
  return { ...totals };
}

function copyChat(chat: ChatState): ChatState {
  return { ...chat, agents: copyMap(chat.agents, copyTotals) };
}

/**
 * A copy of an account that the rules may mutate without touching the original: every part they
 * change (the chats, each chat and its agent totals, the dedupe state and its ids, the raised
 * thresholds, the map of open holds) is copied; any other field is shared (the rules never write it). Keys keep their order,
 * so the copy serializes exactly as the original. Much cheaper than structuredClone, which copies
 * through a serializer.
 */
export function cloneAccount(account: AccountState): AccountState {
  const copy: AccountState = {
    ...account,
    thresholds_raised_bp: [...account.thresholds_raised_bp],
    chats: copyMap(account.chats, copyChat),
    dedupe: { ...account.dedupe, seen: account.dedupe.seen.copy() },
  };
  // Holds are added and removed, never changed: the map is copied, each hold shared.
  if (account.holds !== undefined) copy.holds = copyMap(account.holds);
  // Grants and correction memos are replaced, never changed: each map is copied, its values shared.
  if (account.grants !== undefined) copy.grants = copyMap(account.grants);
  if (account.corrections !== undefined)
    copy.corrections = { ...account.corrections, usage: account.corrections.usage.copy() };
  return copy;
}

export function trialRemaining(account: AccountState): number {
  const carried = account.period === undefined ? 0 : account.period.carried_tokens;
  return Math.max(0, account.allowance_tokens + carried - account.trial_used_tokens);
}

export function paidTokens(account: AccountState): number {
  return account.credited_tokens - account.paid_used_tokens;
}

/** Tokens the account's effective grants can still give. */
export function grantTokens(account: AccountState): number {
  const grants = account.grants;
  if (grants === undefined) return 0;
  let left = 0;
  for (const id in grants) {
    const grant = grants[id]!;
    if (grant.active) left += grant.tokens - grant.used;
  }
  return left;
}

/** Tokens the account can still spend; <= 0 means exhausted. */
export function availableTokens(account: AccountState): number {
  return trialRemaining(account) + paidTokens(account) + grantTokens(account);
}

export function canContinue(account: AccountState): boolean {
  return availableTokens(account) > 0;
}

export function balanceSnapshot(account: AccountState): BalanceSnapshot {
  return {
    allowance_tokens: account.allowance_tokens,
    trial_used_tokens: account.trial_used_tokens,
    trial_remaining_tokens: trialRemaining(account),
    paid_tokens: paidTokens(account),
    available_tokens: availableTokens(account),
    // Only on accounts with dated grants, so every other snapshot is as it always was.
    ...(account.grants === undefined ? {} : { grant_tokens: grantTokens(account) }),
  };
}

/** Why an exhausted account stopped: never bought tokens (trial/allowance used up) or ran out. */
export function exhaustionReason(
  account: AccountState,
): "trial_exhausted" | "allowance_exhausted" | "insufficient_tokens" {
  if (account.credited_tokens > 0) return "insufficient_tokens";
  return account.level === "app_usage" ? "trial_exhausted" : "allowance_exhausted";
}
