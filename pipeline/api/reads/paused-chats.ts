import type { PausedChatsResponse } from "../../../schemas/api.ts";
import { COLLECTIONS, type MongoLayout } from "../../../sinks/mongo/layout.ts";

/** Bound on one answer; an app with more paused chats than this has a bigger problem than paging. */
const MAX_CHATS = 1_000;

function text(value: unknown): string | null {
  return typeof value === "string" ? value : null;
}

/** The app's end users' chats that are paused now (the PausedChats projection), by chat id. */
export async function pausedChats(
  layout: MongoLayout,
  enterpriseId: string,
  creator: string | null,
): Promise<PausedChatsResponse> {
  const docs = await layout
    .app(enterpriseId)
    .collection(COLLECTIONS.app.pausedChats)
    .find(creator === null ? { paused: true } : { paused: true, mozaiks_user_id: creator })
    .sort({ chat_id: 1, _id: 1 })
    .limit(MAX_CHATS)
    .toArray();
  return {
    enterprise_id: enterpriseId,
    chats: docs.map((doc) => ({
      chat_id: String(doc.chat_id),
      platform_user_id: text(doc.platform_user_id),
      session_id: text(doc.session_id),
      workflow_name: text(doc.workflow_name),
      pause_reason: text(doc.pause_reason),
      can_resume: doc.can_resume === true,
      updated_at: text(doc.updated_at),
    })),
  };
}
