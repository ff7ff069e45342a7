import type { SessionSummary, UsageRecord } from "../../schemas/index.ts";
import { epochMs } from "../../schemas/index.ts";
import type { AccountState, ChatState } from "./account.ts";
import { ownValue, sortedKeys } from "./own.ts";
import type { AgentPrice } from "./pricebook.ts";

type ChatOpening = { session_id: string; workflow_name: string; started_at: string; occurred_at: string };

/** The chat's state, created on first sight (a usage or session record may come first). Mutates. */
export function openChat(account: AccountState, chatId: string, opening: ChatOpening): ChatState {
  const existing = ownValue(account.chats, chatId);
  if (existing !== undefined) {
    existing.session_id = opening.session_id;
    existing.workflow_name = opening.workflow_name;
    if (epochMs(opening.started_at) < epochMs(existing.started_at)) existing.started_at = opening.started_at;
    if (epochMs(opening.occurred_at) > epochMs(existing.last_event_at))
      existing.last_event_at = opening.occurred_at;
    return existing;
  }
  const chat: ChatState = {
    session_id: opening.session_id,
    workflow_name: opening.workflow_name,
    started_at: opening.started_at,
    last_event_at: opening.occurred_at,
    paused: false,
    pause_reason: null,
    can_resume: false,
    total_tokens: 0,
    cost_micros: 0n,
    billed_micros: 0n,
    agents: {},
  };
  account.chats[chatId] = chat;
  return chat;
}

export function usageOpening(record: UsageRecord): ChatOpening {
  return {
    session_id: record.session_id,
    workflow_name: record.workflow_name,
    started_at: record.started_at ?? record.occurred_at,
    occurred_at: record.occurred_at,
  };
}

/** Adds one usage record's figures to its chat. Mutates `chat`. */
export function addUsage(
  chat: ChatState,
  agents: Readonly<Record<string, AgentPrice>>,
  costMicros: bigint,
  billedMicros: bigint,
): void {
  for (const [name, agent] of Object.entries(agents)) {
    const totals = ownValue(chat.agents, name) ?? {
      prompt_tokens: 0,
      completion_tokens: 0,
      response_time_ms: 0,
      message_count: 0,
    };
    totals.prompt_tokens += agent.prompt_tokens;
    totals.completion_tokens += agent.completion_tokens;
    totals.response_time_ms += agent.response_time_ms ?? 0;
    totals.message_count += agent.message_count ?? 0;
    chat.agents[name] = totals;
    chat.total_tokens += agent.prompt_tokens + agent.completion_tokens;
  }
  chat.cost_micros += costMicros;
  chat.billed_micros += billedMicros;
}

type SummaryBase = Omit<
  SessionSummary,
  | "kind"
  | "session_id"
  | "chat_id"
  | "workflow_name"
  | "started_at"
  | "ended_at"
  | "session_duration_seconds"
  | "total_tokens"
  | "total_cost_micros"
  | "billed_micros"
  | "agents_used"
  | "agent_performance"
>;

/** The seed's PerformanceMetrics for a finalized chat; ended_at is the finalize record's time. */
export function summarizeChat(
  chatId: string,
  chat: ChatState,
  endedAt: string,
  base: SummaryBase,
): SessionSummary {
  const agentPerformance: SessionSummary["agent_performance"] = {};
  for (const name of sortedKeys(chat.agents)) {
    const totals = chat.agents[name]!;
    agentPerformance[name] = {
      prompt_tokens: totals.prompt_tokens,
      completion_tokens: totals.completion_tokens,
      total_response_time_ms: totals.response_time_ms,
      message_count: totals.message_count,
      avg_response_time_ms:
        totals.message_count > 0
          ? Math.round((totals.response_time_ms / totals.message_count) * 100) / 100
          : null,
    };
  }
  return {
    kind: "session_summary",
    ...base,
    session_id: chat.session_id,
    chat_id: chatId,
    workflow_name: chat.workflow_name,
    started_at: chat.started_at,
    ended_at: endedAt,
    session_duration_seconds: Math.max(0, (epochMs(endedAt) - epochMs(chat.started_at)) / 1000),
    total_tokens: chat.total_tokens,
    total_cost_micros: chat.cost_micros,
    billed_micros: chat.billed_micros,
    agents_used: sortedKeys(chat.agents),
    agent_performance: agentPerformance,
  };
}
