import type { SessionSummary } from "../../schemas/index.ts";
import { microsToDecimalString } from "../../schemas/index.ts";
import type { ChatState } from "./account.ts";
import { addUsage } from "./chats.ts";
import type { AgentPrice } from "./pricebook.ts";

export { type ChatOpening, emptyChat } from "./chats.ts";

/**
 * Adds one priced usage record to the chat as the runtime that produced it sees it. The runtime does
 * not hold the account's balances, so it cannot know which part the trial paid: nothing is counted as
 * billed (billed_micros stays as it was). Mutates `chat`.
 */
export function tallyUsage(
  chat: ChatState,
  priced: { cost_micros: bigint; agents: Readonly<Record<string, AgentPrice>> },
  occurredAt: string,
): void {
  addUsage(chat, priced.agents, priced.cost_micros, 0n);
  chat.last_event_at = occurredAt;
}

/** A finished session's headline figures (tokens, cost, duration, agents), from its summary. */
export type SessionMetrics = {
  total_tokens: number;
  total_cost_micros: bigint;
  /** Display only (`0.462`). */
  total_cost: string;
  session_duration_seconds: number;
  agents_used: string[];
};

export function sessionMetricsOf(summary: SessionSummary): SessionMetrics {
  return {
    total_tokens: summary.total_tokens,
    total_cost_micros: summary.total_cost_micros,
    total_cost: microsToDecimalString(summary.total_cost_micros),
    session_duration_seconds: summary.session_duration_seconds,
    agents_used: summary.agents_used,
  };
}
