import type { BudgetState } from "../../schemas/index.ts";

/**
 * Answers a runtime reads off an account's published budget state. They live beside the rules that
 * produce the state so that every reader (the SDK's view, strict reads, mock mode) answers alike.
 */

export type ChatBudget = {
  chat_id: string;
  paused: boolean;
  pause_reason: string | null;
  can_resume: boolean;
};

/**
 * One chat's pause state. The state lists paused chats only, so a chat not listed is running; a
 * paused chat may resume once it was made resumable or the account can pay again.
 */
export function chatBudgetOf(state: BudgetState, chatId: string): ChatBudget {
  const paused = state.paused_chats.find((chat) => chat.chat_id === chatId);
  return {
    chat_id: chatId,
    paused: paused !== undefined,
    pause_reason: paused?.pause_reason ?? null,
    can_resume: paused === undefined ? state.can_continue : paused.can_resume || state.can_continue,
  };
}

export type TrialUsage = {
  allowance_tokens: number;
  trial_used_tokens: number;
  trial_remaining_tokens: number;
  /** True while the account spends its trial (or platform allowance) and owes nothing bought. */
  is_free_trial: boolean;
};

/** The trial (app level) or allowance (platform level) figures of an account. */
export function trialUsageOf(state: BudgetState): TrialUsage {
  return {
    allowance_tokens: state.allowance_tokens,
    trial_used_tokens: state.trial_used_tokens ?? usedBeforeItWasPublished(state),
    trial_remaining_tokens: state.trial_remaining_tokens,
    is_free_trial: state.trial_remaining_tokens > 0 && state.paid_tokens >= 0,
  };
}

/** A state published before `trial_used_tokens` existed: what it shows of the allowance, never below 0. */
function usedBeforeItWasPublished(state: BudgetState): number {
  const granted = state.allowance_tokens + (state.period?.carried_tokens ?? 0);
  return Math.max(0, granted - state.trial_remaining_tokens);
}
