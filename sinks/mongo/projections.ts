import type { AnyBulkWriteOperation, Collection, Document } from "mongodb";
import type { AccountState, ChatState } from "../../pipeline/core/index.ts";
import type { Output, SessionSummary } from "../../schemas/index.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";

/**
 * Read-side documents of the seed's layout that are projections of account state or of single outputs:
 * pause states, sessions, chat summaries, apps, creators' platform usage. Each is an absolute value that
 * depends only on the records applied so far, so writing it again is harmless: these are plain upserts,
 * coalesced per document within a flush (the last state wins) and written before the account documents.
 */
export interface ProjectionWrite {
  collection: Collection<Document>;
  id: string;
  /** The whole document (projections of one account, which one partition owns). */
  doc?: Document;
  /**
   * Or fields merged into a document many partitions touch (an app, a workflow): `$max` keeps
   * `last_used_at` monotonic whichever partition writes last.
   */
  merge?: { set: Document; max: Document };
}

export type ChatStatus = "active" | "paused" | "resumable" | "finalized";

function chatStatus(chat: ChatState | undefined): ChatStatus {
  if (chat === undefined) return "finalized";
  if (!chat.paused) return "active";
  return chat.can_resume ? "resumable" : "paused";
}

function chatIdOf(output: Output): string | undefined {
  if (output.kind === "session_event" || output.kind === "session_summary") return output.chat_id;
  if (output.kind === "budget_event" && (output.event === "exhausted" || output.event === "resumable"))
    return output.chat_id;
  return undefined;
}

function pauseDoc(
  account: AccountState,
  chatId: string,
  chat: ChatState | undefined,
  last: Output,
): Document {
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

function sessionDoc(summary: SessionSummary): Document {
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

/**
 * The projection writes for one flush. `accounts` are the touched accounts' states after the batch;
 * `outputs` are the batch's outputs in order.
 */
export function projectionWrites(
  layout: MongoLayout,
  accounts: ReadonlyMap<string, AccountState>,
  outputs: readonly Output[],
): ProjectionWrite[] {
  const writes = new Map<string, ProjectionWrite>();
  const put = (collection: Collection<Document>, id: string, doc: Document): void => {
    writes.set(`${collection.dbName}.${collection.collectionName}/${id}`, { collection, id, doc });
  };
  const merge = (collection: Collection<Document>, id: string, set: Document, max: Document): void => {
    const key = `${collection.dbName}.${collection.collectionName}/${id}`;
    const previous = writes.get(key)?.merge?.max;
    const newer = previous !== undefined && previous.last_used_at > max.last_used_at ? previous : max;
    writes.set(key, { collection, id, merge: { set, max: newer } });
  };
  const platform = layout.platform();
  const workflow = layout.workflow();

  const lastByChat = new Map<string, Output>();
  for (const output of outputs) {
    const chatId = chatIdOf(output);
    if (chatId !== undefined) lastByChat.set(`${output.account_key}\u0000${chatId}`, output);
    if (output.kind === "session_event" && output.event === "start") {
      const db =
        output.level === "platform"
          ? platform.collection(COLLECTIONS.platform.sessions)
          : layout.app(output.enterprise_id).collection(COLLECTIONS.app.sessions);
      const doc = {
        session_id: output.session_id,
        chat_id: output.chat_id,
        account_key: output.account_key,
        level: output.level,
        enterprise_id: output.enterprise_id,
        mozaiks_user_id: output.mozaiks_user_id,
        platform_user_id: output.platform_user_id,
        workflow_name: output.workflow_name,
        status: "active",
        started_at: output.occurred_at,
      };
      put(db, output.session_id, doc);
      put(workflow.collection(COLLECTIONS.workflow.tokenSessions), output.session_id, doc);
    }
    if (output.kind === "session_summary") {
      const doc = sessionDoc(output);
      const db =
        output.level === "platform"
          ? platform.collection(COLLECTIONS.platform.sessions)
          : layout.app(output.enterprise_id).collection(COLLECTIONS.app.sessions);
      put(db, output.session_id, doc);
      put(workflow.collection(COLLECTIONS.workflow.tokenSessions), output.session_id, doc);
      put(workflow.collection(COLLECTIONS.workflow.tokenChats), output.chat_id, {
        ...doc,
        timestamp: output.ended_at,
      });
    }
    if (output.kind === "usage_outcome") {
      const lastUsed = { last_used_at: new Date(output.occurred_at) };
      merge(
        workflow.collection(COLLECTIONS.workflow.workflows),
        `${output.enterprise_id}:${output.workflow_name}`,
        {
          enterprise_id: output.enterprise_id,
          workflow_name: output.workflow_name,
          workflow_type: output.workflow_type,
        },
        lastUsed,
      );
      merge(
        platform.collection(COLLECTIONS.platform.enterprises),
        output.enterprise_id,
        { enterprise_id: output.enterprise_id, mozaiks_user_id: output.mozaiks_user_id },
        lastUsed,
      );
    }
  }

  for (const [key, last] of lastByChat) {
    const [accountKey, chatId] = key.split("\u0000") as [string, string];
    const account = accounts.get(accountKey);
    if (account === undefined) continue;
    const doc = pauseDoc(account, chatId, account.chats[chatId], last);
    put(workflow.collection(COLLECTIONS.workflow.chatPauses), chatId, doc);
    if (account.level === "app_usage")
      put(layout.app(last.enterprise_id).collection(COLLECTIONS.app.pausedChats), chatId, doc);
  }

  for (const account of accounts.values()) {
    if (account.level !== "platform") continue;
    put(platform.collection(COLLECTIONS.platform.usage), account.mozaiks_user_id, {
      mozaiks_user_id: account.mozaiks_user_id,
      tokens_used: account.tokens_used,
      cost_micros: account.cost_micros,
      billed_micros: account.billed_micros,
      allowance_tokens: account.allowance_tokens,
      allowance_used_tokens: account.trial_used_tokens,
      paid_tokens: account.credited_tokens - account.paid_used_tokens,
      as_of: account.last_event_at,
    });
  }
  return [...writes.values()];
}

function operation(write: ProjectionWrite): AnyBulkWriteOperation<Document> {
  const filter = { _id: write.id } as Document;
  if (write.merge !== undefined) {
    return { updateOne: { filter, update: { $set: write.merge.set, $max: write.merge.max }, upsert: true } };
  }
  return { replaceOne: { filter, replacement: write.doc ?? {}, upsert: true } };
}

/**
 * One ordered bulk of upserts per collection. Two partitions creating the same shared document at once
 * can collide on its _id; the flush is then retried, and the retry finds the document and merges.
 */
export async function writeProjections(writes: readonly ProjectionWrite[]): Promise<void> {
  const byCollection = new Map<Collection<Document>, AnyBulkWriteOperation<Document>[]>();
  for (const write of writes) {
    const operations = byCollection.get(write.collection) ?? [];
    operations.push(operation(write));
    byCollection.set(write.collection, operations);
  }
  await Promise.all(
    [...byCollection].map(([collection, operations]) => collection.bulkWrite(operations, { ordered: true })),
  );
}
