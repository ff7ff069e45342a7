import type { BudgetState } from "../../schemas/index.ts";
import { SCHEMA_VERSION } from "../../schemas/index.ts";
import {
  type AccountState,
  availableTokens,
  canContinue,
  exhaustionReason,
  paidTokens,
  trialRemaining,
} from "./account.ts";
import { sortedKeys } from "./own.ts";

/** The runtime-facing view of an account (for the compacted budget-state topic). */
export function budgetStateOf(account: AccountState): BudgetState {
  const pausedChats = sortedKeys(account.chats)
    .map((chatId) => ({ chatId, chat: account.chats[chatId]! }))
    .filter(({ chat }) => chat.paused)
    .map(({ chatId, chat }) => ({
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
    trial_remaining_tokens: trialRemaining(account),
    paid_tokens: paidTokens(account),
    available_tokens: availableTokens(account),
    paused_chats: pausedChats,
    as_of: account.last_event_at,
  };
}
