import type { AnyBulkWriteOperation, Collection, Document } from "mongodb";
import type { AccountState, ChatState } from "../../pipeline/core/index.ts";
import type { Output, SessionSummary } from "../../schemas/index.ts";
import { chunked, groupBy, namespaceOf, STATEMENTS_PER_COMMAND } from "./bulk.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";
import type { Limiter, WeightedTask } from "./limiter.ts";

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
   * Or fields merged into a document many partitions touch (an app, a workflow). They hold only
   * facts that never change, so any partition may write them, in any order, once per process.
   */
  merge?: { set: Document };
  /** For merges: the key to remember as written once the flush is durable. */
  sharedKey?: string;
  /**
   * The document never changes once written (a finished session's summary): it goes in a multi-document
   * insert, which FerretDB takes far faster than one update per document.
   */
  immutable?: boolean;
  /** Update the document only if it exists (a finished chat's pause document, if it ever had one). */
  ifExists?: boolean;
}

/**
 * Which open chats of one partition's accounts have a pause document, so that finishing a chat that never
 * paused costs no write. Exact for chats opened since their account was loaded; a chat already open in a
 * loaded account may have paused under an earlier owner, so it counts as having one.
 */
export class PauseDocuments {
  private readonly chats = new Set<string>();

  loaded(accountKey: string, openChats: Readonly<Record<string, unknown>>): void {
    for (const chatId of Object.keys(openChats)) this.chats.add(chatKey(accountKey, chatId));
  }

  has(accountKey: string, chatId: string): boolean {
    return this.chats.has(chatKey(accountKey, chatId));
  }

  written(accountKey: string, chatId: string): void {
    this.chats.add(chatKey(accountKey, chatId));
  }

  /** A finished chat leaves its account's state: nothing more will be written for it. */
  finished(accountKey: string, chatId: string): void {
    this.chats.delete(chatKey(accountKey, chatId));
  }

  clear(): void {
    this.chats.clear();
  }
}

function chatKey(accountKey: string, chatId: string): string {
  return `${accountKey}\u0000${chatId}`;
}

export type ChatStatus = "active" | "paused" | "resumable" | "finalized";

function chatStatus(chat: ChatState | undefined): ChatStatus {
  if (chat === undefined) return "finalized";
  if (!chat.paused) return "active";
  return chat.can_resume ? "resumable" : "paused";
}

/** The chat whose pause state this output changes, if any (most chats never pause: no write for them). */
function pausedChatOf(output: Output): string | undefined {
  if (output.kind === "budget_event" && (output.event === "exhausted" || output.event === "resumable"))
    return output.chat_id;
  if (output.kind !== "session_event") return undefined;
  if (output.event === "pause" || output.event === "resume") return output.chat_id;
  if (output.event === "finalize" && (output.chat_paused || output.can_resume)) return output.chat_id;
  return undefined;
}

/** A chat finalized while not paused may still have a pause document from earlier: mark it finalized. */
function finalizedChatOf(output: Output): string | undefined {
  return output.kind === "session_event" &&
    output.event === "finalize" &&
    !output.chat_paused &&
    !output.can_resume
    ? output.chat_id
    : undefined;
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
  /** Shared documents this process has already written (apps, workflows): not written again. */
  known: ReadonlySet<string>,
  /** Updated as pause documents are planned and chats finish. */
  pauseDocuments: PauseDocuments,
): ProjectionWrite[] {
  const writes = new Map<string, ProjectionWrite>();
  const put = (collection: Collection<Document>, id: string, doc: Document, immutable = false): void => {
    writes.set(`${collection.dbName}.${collection.collectionName}/${id}`, { collection, id, doc, immutable });
  };
  const merge = (collection: Collection<Document>, id: string, set: Document): void => {
    const key = `${collection.dbName}.${collection.collectionName}/${id}`;
    if (!known.has(key)) writes.set(key, { collection, id, merge: { set }, sharedKey: key });
  };
  const platform = layout.platform();
  const workflow = layout.workflow();

  const lastByChat = new Map<string, Output>();
  for (const output of outputs) {
    const chatId = pausedChatOf(output);
    if (chatId !== undefined) {
      lastByChat.set(`${output.account_key}\u0000${chatId}`, output);
      pauseDocuments.written(output.account_key, chatId);
    }
    const finished = finalizedChatOf(output);
    const marksPauseDocument =
      finished !== undefined &&
      pauseDocuments.has(output.account_key, finished) &&
      !lastByChat.has(`${output.account_key}\u0000${finished}`);
    if (output.kind === "session_event" && output.event === "finalize")
      pauseDocuments.finished(output.account_key, output.chat_id);
    if (finished !== undefined && marksPauseDocument) {
      const collection =
        output.level === "app_usage"
          ? layout.app(output.enterprise_id).collection(COLLECTIONS.app.pausedChats)
          : workflow.collection(COLLECTIONS.workflow.chatPauses);
      const doc = {
        status: "finalized",
        paused: false,
        can_resume: false,
        pause_reason: null,
        updated_at: output.occurred_at,
      };
      writes.set(`${collection.dbName}.${collection.collectionName}/${finished}`, {
        collection,
        id: finished,
        doc,
        ifExists: true,
      });
    }
    if (output.kind === "session_summary") {
      const doc = sessionDoc(output);
      const db =
        output.level === "platform"
          ? platform.collection(COLLECTIONS.platform.sessions)
          : layout.app(output.enterprise_id).collection(COLLECTIONS.app.sessions);
      put(db, output.session_id, doc, true);
      put(workflow.collection(COLLECTIONS.workflow.tokenSessions), output.session_id, doc, true);
      put(
        workflow.collection(COLLECTIONS.workflow.tokenChats),
        output.chat_id,
        { ...doc, timestamp: output.ended_at },
        true,
      );
    }
    if (output.kind === "usage_outcome") {
      merge(
        workflow.collection(COLLECTIONS.workflow.workflows),
        `${output.enterprise_id}:${output.workflow_name}`,
        {
          enterprise_id: output.enterprise_id,
          workflow_name: output.workflow_name,
          workflow_type: output.workflow_type,
        },
      );
      merge(platform.collection(COLLECTIONS.platform.enterprises), output.enterprise_id, {
        enterprise_id: output.enterprise_id,
        mozaiks_user_id: output.mozaiks_user_id,
      });
    }
  }

  for (const [key, last] of lastByChat) {
    const [accountKey, chatId] = key.split("\u0000") as [string, string];
    const account = accounts.get(accountKey);
    if (account === undefined) continue;
    const doc = pauseDoc(account, chatId, account.chats[chatId], last);
    // One pause document per chat: an app's end users' in its PausedChats, creators' in ChatPauses.
    const collection =
      account.level === "app_usage"
        ? layout.app(last.enterprise_id).collection(COLLECTIONS.app.pausedChats)
        : workflow.collection(COLLECTIONS.workflow.chatPauses);
    put(collection, chatId, doc);
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

/** One projection as a bulk-write statement: an absolute value, so writing it twice is harmless. */
function statement(projection: ProjectionWrite): AnyBulkWriteOperation<Document> {
  const filter = { _id: projection.id } as Document;
  if (projection.ifExists === true) return { updateOne: { filter, update: { $set: projection.doc ?? {} } } };
  if (projection.merge !== undefined)
    return { updateOne: { filter, update: { $set: projection.merge.set }, upsert: true } };
  return { replaceOne: { filter, replacement: projection.doc ?? {}, upsert: true } };
}

/** Writes per collection, by namespace: the layout hands out a new Collection object for every lookup. */
function byCollection(writes: readonly ProjectionWrite[]): [Collection<Document>, ProjectionWrite[]][] {
  return [...groupBy(writes, (projection) => namespaceOf(projection.collection)).values()].map((list) => [
    list[0]!.collection,
    list,
  ]);
}

/**
 * Immutable documents go in one insertMany per collection; a failure there (a document already in, after
 * a crash or a retried flush) falls back to upserting them. The rest are upserts, in bulks of a few
 * statements per collection (see bulk.ts), weighed by their statements under the process-wide limiter.
 * Two partitions creating the same shared document at once can collide on its _id; the flush is then
 * retried and finds it.
 */
export async function writeProjections(writes: readonly ProjectionWrite[], limiter: Limiter): Promise<void> {
  const tasks: WeightedTask[] = [];
  const upsert = (collection: Collection<Document>, chunk: readonly ProjectionWrite[]) => async () => {
    await collection.bulkWrite(chunk.map(statement), { ordered: false });
  };
  for (const [collection, list] of byCollection(
    writes.filter((projection) => projection.immutable !== true),
  )) {
    for (const chunk of chunked(list)) tasks.push({ run: upsert(collection, chunk), weight: chunk.length });
  }
  for (const [collection, list] of byCollection(
    writes.filter((projection) => projection.immutable === true),
  )) {
    // Weighed as its fallback, so that the fallback needs no second permit (which could deadlock).
    const weight = Math.min(list.length, STATEMENTS_PER_COMMAND);
    const run = async () => {
      try {
        await collection.insertMany(
          list.map((projection) => ({ _id: projection.id, ...projection.doc }) as Document),
          { ordered: false },
        );
      } catch {
        for (const chunk of chunked(list)) await upsert(collection, chunk)();
      }
    };
    tasks.push({ run, weight });
  }
  await limiter.all(tasks);
}
