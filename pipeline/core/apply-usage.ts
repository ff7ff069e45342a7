import { epochMs, type Output, type UsageRecord } from "../../schemas/index.ts";
import { type AccountState, balanceSnapshot, canContinue, exhaustionReason } from "./account.ts";
import type { BillingConfig } from "./billing-config.ts";
import { drawTokens, overdraftEvents, planDraw, resumableEvents, thresholdEvents } from "./budget.ts";
import { addUsage, openChat, usageOpening } from "./chats.ts";
import { rememberUsage } from "./corrections.ts";
import { usageRangeReason } from "./limits.ts";
import { type OutputBase, outputBase } from "./output-base.ts";
import { ownValue } from "./own.ts";
import { trialRemainingAt, writtenOffEver } from "./periods.ts";
import type { AgentPrice } from "./pricebook.ts";
import { billedPart, creatorShareBp, splitRevenue } from "./split.ts";

/** What must happen once a usage record is known to apply, before its own effect (apply.ts advanceClocks). */
export type BeforeUsage = (
  account: AccountState,
  eventMs: number,
  record: UsageRecord,
  config: BillingConfig,
  outputs: Output[],
) => void;

type Priced = { cost_micros: bigint; agents: Record<string, AgentPrice>; price_ids: string[] };

/**
 * Meters one priced usage record: draw, bill, split, chat totals, budget events. Returns the
 * RECORD_OUT_OF_RANGE reason, without touching `account`, when a counter would pass its bound;
 * otherwise calls `beforeChange` (what must happen once the record is known to apply, before its own
 * effect: expiring holds), mutates `account` and returns undefined.
 */
export function applyUsage(
  account: AccountState,
  record: UsageRecord,
  priced: Priced,
  config: BillingConfig,
  outputs: Output[],
  base: OutputBase = outputBase(record),
  beforeChange?: BeforeUsage,
  /** The account's event clock for this record (grants start and expire by it); default its occurred_at. */
  eventMs: number = epochMs(record.occurred_at),
): string | undefined {
  let promptTokens = 0;
  let completionTokens = 0;
  // Token classes, summed only over the agents that report them: undefined when none does, so the
  // outcome of a record without them is as it always was.
  let cached: number | undefined;
  let reasoning: number | undefined;
  let audio: number | undefined;
  for (const name in priced.agents) {
    const agent = priced.agents[name]!;
    promptTokens += agent.prompt_tokens;
    completionTokens += agent.completion_tokens;
    if (agent.cached_prompt_tokens !== undefined) cached = (cached ?? 0) + agent.cached_prompt_tokens;
    if (agent.reasoning_tokens !== undefined) reasoning = (reasoning ?? 0) + agent.reasoning_tokens;
    if (agent.audio_tokens !== undefined) audio = (audio ?? 0) + agent.audio_tokens;
  }
  const tokensUsed = promptTokens + completionTokens + (cached ?? 0) + (reasoning ?? 0) + (audio ?? 0);
  const planned = planDraw(account, tokensUsed, eventMs, trialRemainingAt(account, config, eventMs));
  const billed = billedPart(priced.cost_micros, planned.paid_tokens, tokensUsed);
  const shareBp = creatorShareBp(record.level, record.enterprise_id, config);
  const split = splitRevenue(billed, shareBp);
  const outOfRange = usageRangeReason(account, ownValue(account.chats, record.chat_id), priced.agents, {
    tokens_used: tokensUsed,
    trial_tokens: planned.trial_tokens,
    paid_tokens: planned.paid_tokens,
    cost_micros: priced.cost_micros,
    billed_micros: billed,
    creator_share_micros: split.creator_share_micros,
    platform_fee_micros: split.platform_fee_micros,
  });
  if (outOfRange !== undefined) return outOfRange;
  beforeChange?.(account, eventMs, record, config, outputs);

  const couldContinue = canContinue(account);
  const chat = openChat(account, record.chat_id, usageOpening(record), {
    max_open_chats: config.max_open_chats,
    base,
    outputs,
  });
  // Usage on a paused chat while the account can pay means the runtime resumed it.
  if (chat.paused && couldContinue) {
    chat.paused = false;
    chat.pause_reason = null;
    chat.can_resume = false;
  }

  const draw = drawTokens(account, tokensUsed, planned);
  account.tokens_used += tokensUsed;
  account.cost_micros += priced.cost_micros;
  account.billed_micros += billed;
  account.creator_share_micros += split.creator_share_micros;
  account.platform_fee_micros += split.platform_fee_micros;
  addUsage(chat, priced.agents, priced.cost_micros, billed);

  const events = thresholdEvents(account, config, base);
  for (const event of overdraftEvents(account, base)) events.push(event);
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
  for (const event of resumableEvents(account, base, couldContinue)) events.push(event);

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
    ...(cached === undefined ? {} : { cached_prompt_tokens: cached }),
    ...(reasoning === undefined ? {} : { reasoning_tokens: reasoning }),
    ...(audio === undefined ? {} : { audio_tokens: audio }),
    cost_micros: priced.cost_micros,
    billed_micros: billed,
    creator_share_micros: split.creator_share_micros,
    platform_fee_micros: split.platform_fee_micros,
    creator_share_bp: shareBp,
    trial_tokens_used: draw.trial_tokens,
    paid_tokens_used: draw.paid_tokens,
    ...(draw.grant_tokens === 0 ? {} : { grant_tokens_used: draw.grant_tokens }),
    decision: draw.decision,
    is_free_trial: draw.decision === "trial",
    price_ids: priced.price_ids,
    agents: priced.agents,
    balance_after: balanceSnapshot(account),
    can_continue: canContinue(account),
    chat_paused: chat.paused,
    pause_reason: chat.pause_reason,
  });
  for (const event of events) outputs.push(event);
  const atMs = epochMs(record.occurred_at);
  const drawnMs = drawnAtMs(account, eventMs);
  const writtenOff = writtenOffEver(account);
  rememberUsage(
    account,
    record.record_id,
    {
      at_ms: atMs,
      enterprise_id: record.enterprise_id,
      chat_id: record.chat_id,
      trial_tokens: draw.trial_tokens,
      paid_tokens: draw.paid_tokens,
      cost_micros: priced.cost_micros,
      billed_micros: billed,
      creator_share_bp: shareBp,
      refunded_micros: 0n,
      voided: false,
      ...(planned.grants.length === 0 ? {} : { grants: Object.fromEntries(planned.grants) }),
      ...(drawnMs === atMs ? {} : { drawn_ms: drawnMs }),
      ...(writtenOff === 0 ? {} : { written_off_before: writtenOff }),
    },
    config,
  );
  return undefined;
}

/**
 * When, in the account's clock, a usage record drew its tokens: the period it drew from is the one a
 * void must give them back to. That is the account's event time, unless a tick (which moves the period
 * but not the records' event time) already opened a later period: then it drew from that one.
 */
function drawnAtMs(account: AccountState, eventMs: number): number {
  if (account.period === undefined) return eventMs;
  const startMs = epochMs(account.period.start);
  return Math.max(startMs, eventMs);
}
