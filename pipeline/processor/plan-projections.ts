/**
 * The read-side documents a batch changes, planned without I/O from the touched accounts' states and the
 * batch's outputs: pause states, sessions, chat summaries, apps, workflows, creators' platform usage.
 * Each is an absolute value, so writing it again is harmless: coalesced per document within a flush
 * (the last state wins) and written before the account documents (flush.ts).
 */
import type { Output, SessionSummary } from "../../schemas/index.ts";
import { workflowKeyOf } from "../../schemas/keys.ts";
import { chatStatus, endsChat, finalizedChatOf, pausedChatOf } from "../core/chat-pauses.ts";
import type { AccountState, ChatState } from "../core/index.ts";
import { ownValue } from "../core/own.ts";
import type { PauseDocuments } from "./pause-documents.ts";
import { type ProjectionTarget, type ProjectionWrite, targetKey } from "./ports.ts";

/**
 * Session and chat ids are chosen by producers and unique only within one account: two apps (or two end
 * users of one app) may both call a chat `chat-1`. Every per-chat or per-session document is therefore
 * keyed by its account too; the documents keep `chat_id`, `session_id` and `account_key` as fields for
 * lookups.
 */
export function scopedId(accountKey: string, id: string): string {
  return `${accountKey}/${id}`;
}

/** One pause document per chat: an app's end users' with the app, creators' in the workflow registry. */
function pauseTarget(level: AccountState["level"], enterpriseId: string): ProjectionTarget {
  return level === "app_usage"
    ? { db: "app", app: enterpriseId, collection: "pausedChats" }
    : { db: "workflow", collection: "chatPauses" };
}

function pauseDoc(
  account: AccountState,
  chatId: string,
  chat: ChatState | undefined,
  last: Output,
): Record<string, unknown> {
  return {
    chat_id: chatId,
    account_key: account.account_key,
    level: account.level,
    enterprise_id: last.enterprise_id,
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
    session_id: chat?.session_id ?? ("session_id" in last ? last.session_id : null),
    workflow_name: chat?.workflow_name ?? ("workflow_name" in last ? last.workflow_name : null),
    status: chatStatus(chat),
    paused: chat?.paused ?? false,
    pause_reason: chat?.pause_reason ?? null,
    can_resume: chat?.can_resume ?? false,
    updated_at: last.occurred_at,
  };
}

function sessionDoc(summary: SessionSummary): Record<string, unknown> {
  return {
    session_id: summary.session_id,
    chat_id: summary.chat_id,
    account_key: summary.account_key,
    level: summary.level,
    enterprise_id: summary.enterprise_id,
    mozaiks_user_id: summary.mozaiks_user_id,
    platform_user_id: summary.platform_user_id,
    workflow_name: summary.workflow_name,
    status: "completed",
    started_at: summary.started_at,
    ended_at: summary.ended_at,
    session_summary: {
      total_tokens: summary.total_tokens,
      total_cost_micros: summary.total_cost_micros,
      billed_micros: summary.billed_micros,
      session_duration_seconds: summary.session_duration_seconds,
      agents_used: summary.agents_used,
    },
    agent_performance: summary.agent_performance,
  };
}

/** The creator's platform usage document: a projection of the platform account's state. */
function platformUsageDoc(account: AccountState): Record<string, unknown> {
  return {
    mozaiks_user_id: account.mozaiks_user_id,
    tokens_used: account.tokens_used,
    cost_micros: account.cost_micros,
    billed_micros: account.billed_micros,
    allowance_tokens: account.allowance_tokens,
    allowance_used_tokens: account.trial_used_tokens,
    paid_tokens: account.credited_tokens - account.paid_used_tokens,
    as_of: account.last_event_at,
  };
}

interface ChatRef {
  accountKey: string;
  chatId: string;
}

/**
 * The projection writes for one flush. `accounts` are the touched accounts' states after the batch;
 * `outputs` are the batch's outputs in order.
 */
export function projectionWrites(
  accounts: ReadonlyMap<string, AccountState>,
  outputs: readonly Output[],
  /** Shared documents this process has already written (apps, workflows): not written again. */
  known: ReadonlySet<string>,
  /** Updated as pause documents are planned and chats finish. */
  pauseDocuments: PauseDocuments,
): ProjectionWrite[] {
  const writes = new Map<string, ProjectionWrite>();
  const keyOf = (target: ProjectionTarget, id: string): string => `${targetKey(target)}/${id}`;
  const put = (target: ProjectionTarget, id: string, doc: Record<string, unknown>, immutable = false) => {
    writes.set(keyOf(target, id), { target, id, doc, immutable });
  };
  const merge = (target: ProjectionTarget, id: string, set: Record<string, unknown>): void => {
    const key = keyOf(target, id);
    if (!known.has(key)) writes.set(key, { target, id, merge: { set }, sharedKey: key });
  };

  // Per account, the last output that changed each chat's pause state (Map order: first seen).
  const lastByChat = new Map<string, { chat: ChatRef; last: Output }>();
  for (const output of outputs) {
    const chatId = pausedChatOf(output);
    if (chatId !== undefined) {
      lastByChat.set(scopedId(output.account_key, chatId), {
        chat: { accountKey: output.account_key, chatId },
        last: output,
      });
      pauseDocuments.written(output.account_key, chatId);
    }
    const finished = finalizedChatOf(output);
    const marksPauseDocument =
      finished !== undefined &&
      pauseDocuments.has(output.account_key, finished) &&
      !lastByChat.has(scopedId(output.account_key, finished));
    if (endsChat(output)) pauseDocuments.finished(output.account_key, output.chat_id);
    if (finished !== undefined && marksPauseDocument) {
      const target = pauseTarget(output.level, output.enterprise_id);
      const id = scopedId(output.account_key, finished);
      const doc = {
        status: "finalized",
        paused: false,
        can_resume: false,
        pause_reason: null,
        updated_at: output.occurred_at,
      };
      writes.set(keyOf(target, id), { target, id, doc, ifExists: true });
    }
    if (output.kind === "session_summary") {
      const doc = sessionDoc(output);
      const sessionId = scopedId(output.account_key, output.session_id);
      put(
        output.level === "platform"
          ? { db: "platform", collection: "sessions" }
          : { db: "app", app: output.enterprise_id, collection: "sessions" },
        sessionId,
        doc,
        true,
      );
      put({ db: "workflow", collection: "tokenSessions" }, sessionId, doc, true);
      put(
        { db: "workflow", collection: "tokenChats" },
        scopedId(output.account_key, output.chat_id),
        { ...doc, timestamp: output.ended_at },
        true,
      );
    }
    if (output.kind === "usage_outcome") {
      merge(
        { db: "workflow", collection: "workflows" },
        workflowKeyOf(output.enterprise_id, output.workflow_name),
        {
          enterprise_id: output.enterprise_id,
          workflow_name: output.workflow_name,
          workflow_type: output.workflow_type,
        },
      );
      merge({ db: "platform", collection: "enterprises" }, output.enterprise_id, {
        enterprise_id: output.enterprise_id,
        mozaiks_user_id: output.mozaiks_user_id,
      });
    }
  }

  for (const { chat, last } of lastByChat.values()) {
    const account = accounts.get(chat.accountKey);
    if (account === undefined) continue;
    const doc = pauseDoc(account, chat.chatId, ownValue(account.chats, chat.chatId), last);
    put(pauseTarget(account.level, last.enterprise_id), scopedId(chat.accountKey, chat.chatId), doc);
  }

  for (const account of accounts.values()) {
    if (account.level !== "platform") continue;
    put({ db: "platform", collection: "usage" }, account.mozaiks_user_id, platformUsageDoc(account));
  }
  return [...writes.values()];
}
