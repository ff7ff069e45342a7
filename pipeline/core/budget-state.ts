import type { BudgetState } from "../../schemas/index.ts";
import { SCHEMA_VERSION } from "../../schemas/index.ts";
import {
  type AccountState,
  availableTokens,
  canContinue,
  exhaustionReason,
  grantTokens,
  paidTokens,
  trialRemaining,
} from "./account.ts";
import { heldTokens } from "./holds.ts";

/** The runtime-facing view of an account (for the compacted budget-state topic). */
export function budgetStateOf(account: AccountState): BudgetState {
  // Only the paused chats are sorted (by chat id), not every open chat.
  const pausedChats = Object.entries(account.chats)
    .filter(([, chat]) => chat.paused)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([chatId, chat]) => ({
      chat_id: chatId,
      pause_reason: chat.pause_reason,
      can_resume: chat.can_resume,
    }));
  const ok = canContinue(account);
  return {
    schema_version: SCHEMA_VERSION,
    account_key: account.account_key,
    level: account.level,
    enterprise_id: account.enterprise_id,
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
    can_continue: ok,
    pause_reason: ok ? null : exhaustionReason(account),
    allowance_tokens: account.allowance_tokens,
    trial_used_tokens: account.trial_used_tokens,
    trial_remaining_tokens: trialRemaining(account),
    paid_tokens: paidTokens(account),
    available_tokens: availableTokens(account),
    held_tokens: heldTokens(account),
    ...(account.grants === undefined ? {} : { grant_tokens: grantTokens(account) }),
    ...(account.period === undefined
      ? {}
      : { period: { start: account.period.start, carried_tokens: account.period.carried_tokens } }),
    paused_chats: pausedChats,
    as_of: account.last_event_at,
  };
}
