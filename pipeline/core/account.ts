import type { BalanceSnapshot, InputRecord, Level } from "../../schemas/index.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import type { BillingConfig } from "./config.ts";
import type { DedupeState } from "./dedupe.ts";
import { ownValue } from "./own.ts";

/** Per-agent running totals of an open chat (the seed's AgentResponseTimeTracker figures). */
export type AgentTotals = {
  prompt_tokens: number;
  completion_tokens: number;
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
  /** Platform: the creator. App: the app's creator as last seen on a record. */
  mozaiks_user_id: string;
  platform_user_id: string | null;
  /** Trial allowance (app) or platform allowance (creator), in tokens. */
  allowance_tokens: number;
  trial_used_tokens: number;
  /** Sum of top-ups and grants, in tokens. */
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
    chats: {},
    dedupe: { seen: {}, count: 0, max_event_ms: null, oldest_ms: null },
    last_event_at: null,
  };
}

export function trialRemaining(account: AccountState): number {
  return Math.max(0, account.allowance_tokens - account.trial_used_tokens);
}

export function paidTokens(account: AccountState): number {
  return account.credited_tokens - account.paid_used_tokens;
}

/** Tokens the account can still spend; <= 0 means exhausted. */
export function availableTokens(account: AccountState): number {
  return trialRemaining(account) + paidTokens(account);
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
  };
}

/** Why an exhausted account stopped: never bought tokens (trial/allowance used up) or ran out. */
export function exhaustionReason(
  account: AccountState,
): "trial_exhausted" | "allowance_exhausted" | "insufficient_tokens" {
  if (account.credited_tokens > 0) return "insufficient_tokens";
  return account.level === "app_usage" ? "trial_exhausted" : "allowance_exhausted";
}
