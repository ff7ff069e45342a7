import type { Output, UsageRecord } from "../../schemas/index.ts";
import { type AccountState, balanceSnapshot, canContinue, exhaustionReason } from "./account.ts";
import { drawTokens, overdraftEvents, resumableEvents, thresholdEvents } from "./budget.ts";
import { addUsage, openChat, usageOpening } from "./chats.ts";
import type { BillingConfig } from "./config.ts";
import { outputBase } from "./output-base.ts";
import type { AgentPrice } from "./pricebook.ts";
import { billedPart, creatorShareBp, splitRevenue } from "./split.ts";

type Priced = { cost_micros: bigint; agents: Record<string, AgentPrice>; price_ids: string[] };

/** Meters one priced usage record: draw, bill, split, chat totals, budget events. Mutates `account`. */
export function applyUsage(
  account: AccountState,
  record: UsageRecord,
  priced: Priced,
  config: BillingConfig,
  outputs: Output[],
): void {
  const base = outputBase(record);
  if (account.level === "app_usage") account.mozaiks_user_id = record.mozaiks_user_id;
  const chat = openChat(account, record.chat_id, usageOpening(record));
  // Usage on a paused chat while the account can pay means the runtime resumed it.
  if (chat.paused && canContinue(account)) {
    chat.paused = false;
    chat.pause_reason = null;
    chat.can_resume = false;
  }

  let promptTokens = 0;
  let completionTokens = 0;
  for (const agent of Object.values(priced.agents)) {
    promptTokens += agent.prompt_tokens;
    completionTokens += agent.completion_tokens;
  }
  const tokensUsed = promptTokens + completionTokens;
  const draw = drawTokens(account, tokensUsed);
  const billed = billedPart(priced.cost_micros, draw.paid_tokens, tokensUsed);
  const shareBp = creatorShareBp(record.level, record.enterprise_id, config);
  const split = splitRevenue(billed, shareBp);

  account.tokens_used += tokensUsed;
  account.cost_micros += priced.cost_micros;
  account.billed_micros += billed;
  account.creator_share_micros += split.creator_share_micros;
  account.platform_fee_micros += split.platform_fee_micros;
  addUsage(chat, priced.agents, priced.cost_micros, billed);

  const events = [...thresholdEvents(account, config, base), ...overdraftEvents(account, base)];
  if (!canContinue(account) && !chat.paused) {
    const reason = exhaustionReason(account);
    chat.paused = true;
    chat.pause_reason = reason;
    chat.can_resume = false;
    events.push({
      kind: "budget_event",
      event: "exhausted",
      ...base,
      chat_id: record.chat_id,
      pause_reason: reason,
      balance: balanceSnapshot(account),
    });
  }
  events.push(...resumableEvents(account, base));

  outputs.push({
    kind: "usage_outcome",
    ...base,
    user_id: record.user_id ?? null,
    workflow_type: record.workflow_type,
    workflow_name: record.workflow_name,
    session_id: record.session_id,
    chat_id: record.chat_id,
    billing_target: record.level === "platform" ? "mozaiks_user" : "platform_user",
    tokens_used: tokensUsed,
    prompt_tokens: promptTokens,
    completion_tokens: completionTokens,
    cost_micros: priced.cost_micros,
    billed_micros: billed,
    creator_share_micros: split.creator_share_micros,
    platform_fee_micros: split.platform_fee_micros,
    creator_share_bp: shareBp,
    trial_tokens_used: draw.trial_tokens,
    paid_tokens_used: draw.paid_tokens,
    decision: draw.decision,
    is_free_trial: draw.decision === "trial",
    price_ids: priced.price_ids,
    agents: priced.agents,
    balance_after: balanceSnapshot(account),
    can_continue: canContinue(account),
    chat_paused: chat.paused,
    pause_reason: chat.pause_reason,
  });
  outputs.push(...events);
}
