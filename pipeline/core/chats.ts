import type { Output, SessionSummary, UsageRecord } from "../../schemas/index.ts";
import { epochMs } from "../../schemas/index.ts";
import { type AccountState, type ChatState, canContinue } from "./account.ts";
import type { OutputBase } from "./output-base.ts";
import { ownValue, sortedKeys } from "./own.ts";
import { type AgentPrice, agentTokenCount } from "./pricebook.ts";

/** What opens a chat: the session it belongs to and when it started. */
export type ChatOpening = { session_id: string; workflow_name: string; started_at: string };

/** A chat with nothing metered yet: open, not paused, no agents; its last event is its start. */
export function emptyChat(opening: ChatOpening): ChatState {
  return {
    session_id: opening.session_id,
    workflow_name: opening.workflow_name,
    started_at: opening.started_at,
    last_event_at: opening.started_at,
    paused: false,
    pause_reason: null,
    can_resume: false,
    total_tokens: 0,
    cost_micros: 0n,
    billed_micros: 0n,
    agents: {},
  };
}

/** A chat opened by a record: the opening and the record's own event time. */
type RecordOpening = ChatOpening & { occurred_at: string };

/**
 * Number of open chats per `chats` object, so opening a chat does not count them all every time. The
 * core only mutates accounts it copied itself (every entry point clones first), so a count is taken
 * once per copy (O(chats), like the copy) and then kept exact by openChat and closeChat.
 */
const openCounts = new WeakMap<object, number>();

function openChatCount(account: AccountState): number {
  let count = openCounts.get(account.chats);
  if (count === undefined) {
    count = Object.keys(account.chats).length;
    openCounts.set(account.chats, count);
  }
  return count;
}

/** Drops a chat from the state (finalized or closed at the cap). Mutates. */
export function closeChat(account: AccountState, chatId: string): void {
  if (!Object.hasOwn(account.chats, chatId)) return;
  const count = openChatCount(account);
  delete account.chats[chatId];
  openCounts.set(account.chats, count - 1);
}

/** What opening a chat beyond `max_open_chats` needs: the cap, and where the closed chats' outputs go. */
export type ChatCap = { max_open_chats: number; base: OutputBase; outputs: Output[] };

type AgeEntry = { at: number; chatId: string };

function older(a: AgeEntry, b: AgeEntry): boolean {
  return a.at !== b.at ? a.at < b.at : a.chatId < b.chatId;
}

/**
 * Open chats by age (last_event_at, then chat id), a binary min-heap with lazy deletion: a chat whose
 * last_event_at moves gets a new entry, and entries that no longer match their chat are dropped when
 * they reach the top. Like the open count it is memoized per `chats` object: built once per copy, then
 * O(log chats) per record, so closing the oldest chat at the cap does not scan every chat each time.
 */
class AgeHeap {
  private readonly items: AgeEntry[] = [];

  static of(chats: Readonly<Record<string, ChatState>>): AgeHeap {
    const heap = new AgeHeap();
    for (const [chatId, chat] of Object.entries(chats))
      heap.items.push({ at: epochMs(chat.last_event_at), chatId });
    for (let i = (heap.items.length >> 1) - 1; i >= 0; i--) heap.down(i);
    return heap;
  }

  push(entry: AgeEntry): void {
    const items = this.items;
    items.push(entry);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!older(items[i]!, items[parent]!)) break;
      [items[i], items[parent]] = [items[parent]!, items[i]!];
      i = parent;
    }
  }

  /** The oldest open chat (removed from the heap), skipping stale entries. */
  popOldest(chats: Readonly<Record<string, ChatState>>): string | undefined {
    const items = this.items;
    while (items.length > 0) {
      const top = items[0]!;
      const last = items.pop()!;
      if (items.length > 0) {
        items[0] = last;
        this.down(0);
      }
      const chat = ownValue(chats, top.chatId);
      if (chat !== undefined && epochMs(chat.last_event_at) === top.at) return top.chatId;
    }
    return undefined;
  }

  private down(start: number): void {
    const items = this.items;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < items.length && older(items[left]!, items[least]!)) least = left;
      if (right < items.length && older(items[right]!, items[least]!)) least = right;
      if (least === i) return;
      [items[i], items[least]] = [items[least]!, items[i]!];
      i = least;
    }
  }
}

const ageHeaps = new WeakMap<object, AgeHeap>();

/** Records a chat's (new) last_event_at in the age heap, if one was built for this copy. */
function noteAge(account: AccountState, chatId: string, lastEventAt: string): void {
  ageHeaps.get(account.chats)?.push({ at: epochMs(lastEventAt), chatId });
}

/**
 * Makes room for one more chat: while the account holds `max_open_chats` or more, the open chat with
 * the oldest last_event_at (ties by chat id) is closed exactly as a finalize would (its finalize
 * session_event and session_summary, ended_at = its last_event_at).
 */
function makeRoom(account: AccountState, cap: ChatCap): void {
  if (openChatCount(account) < cap.max_open_chats) return;
  let heap = ageHeaps.get(account.chats);
  if (heap === undefined) {
    heap = AgeHeap.of(account.chats);
    ageHeaps.set(account.chats, heap);
  }
  while (openChatCount(account) >= cap.max_open_chats) {
    const chatId = heap.popOldest(account.chats);
    if (chatId === undefined) return;
    const chat = account.chats[chatId]!;
    closeChat(account, chatId);
    cap.outputs.push(
      {
        kind: "session_event",
        ...cap.base,
        event: "finalize",
        session_id: chat.session_id,
        chat_id: chatId,
        workflow_name: chat.workflow_name,
        chat_paused: chat.paused,
        pause_reason: chat.pause_reason,
        can_resume: chat.can_resume,
        can_continue: canContinue(account),
      },
      summarizeChat(chatId, chat, chat.last_event_at, cap.base),
    );
  }
}

/**
 * The chat's state, created on first sight (a usage or session record may come first); a new chat
 * past `max_open_chats` first closes the oldest (see makeRoom). Mutates.
 */
export function openChat(
  account: AccountState,
  chatId: string,
  opening: RecordOpening,
  cap: ChatCap,
): ChatState {
  const existing = ownValue(account.chats, chatId);
  if (existing !== undefined) {
    existing.session_id = opening.session_id;
    existing.workflow_name = opening.workflow_name;
    // Equal strings are equal times: no parse needed for them.
    if (
      opening.started_at !== existing.started_at &&
      epochMs(opening.started_at) < epochMs(existing.started_at)
    )
      existing.started_at = opening.started_at;
    if (
      opening.occurred_at !== existing.last_event_at &&
      epochMs(opening.occurred_at) > epochMs(existing.last_event_at)
    ) {
      existing.last_event_at = opening.occurred_at;
      noteAge(account, chatId, existing.last_event_at);
    }
    return existing;
  }
  const chat = emptyChat(opening);
  chat.last_event_at = opening.occurred_at;
  makeRoom(account, cap);
  const count = openChatCount(account);
  account.chats[chatId] = chat;
  openCounts.set(account.chats, count + 1);
  noteAge(account, chatId, chat.last_event_at);
  return chat;
}

export function usageOpening(record: UsageRecord): RecordOpening {
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
  for (const name in agents) {
    const agent = agents[name]!;
    const totals = ownValue(chat.agents, name) ?? {
      prompt_tokens: 0,
      completion_tokens: 0,
      response_time_ms: 0,
      message_count: 0,
    };
    totals.prompt_tokens += agent.prompt_tokens;
    totals.completion_tokens += agent.completion_tokens;
    if (agent.cached_prompt_tokens !== undefined)
      totals.cached_prompt_tokens = (totals.cached_prompt_tokens ?? 0) + agent.cached_prompt_tokens;
    if (agent.reasoning_tokens !== undefined)
      totals.reasoning_tokens = (totals.reasoning_tokens ?? 0) + agent.reasoning_tokens;
    if (agent.audio_tokens !== undefined)
      totals.audio_tokens = (totals.audio_tokens ?? 0) + agent.audio_tokens;
    totals.response_time_ms += agent.response_time_ms ?? 0;
    totals.message_count += agent.message_count ?? 0;
    chat.agents[name] = totals;
    chat.total_tokens += agentTokenCount(agent);
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

/**
 * A finalized chat's performance summary (tokens, cost and response time, in all and per agent);
 * ended_at is the finalize record's time.
 */
export function summarizeChat(
  chatId: string,
  chat: ChatState,
  endedAt: string,
  base: SummaryBase,
): SessionSummary {
  const agentPerformance: SessionSummary["agent_performance"] = {};
  const names = sortedKeys(chat.agents);
  for (const name of names) {
    const totals = chat.agents[name]!;
    agentPerformance[name] = {
      prompt_tokens: totals.prompt_tokens,
      completion_tokens: totals.completion_tokens,
      ...(totals.cached_prompt_tokens === undefined
        ? {}
        : { cached_prompt_tokens: totals.cached_prompt_tokens }),
      ...(totals.reasoning_tokens === undefined ? {} : { reasoning_tokens: totals.reasoning_tokens }),
      ...(totals.audio_tokens === undefined ? {} : { audio_tokens: totals.audio_tokens }),
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
    agents_used: names,
    agent_performance: agentPerformance,
  };
}
