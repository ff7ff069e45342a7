import type { Output, SessionRecord } from "../../schemas/index.ts";
import { type AccountState, canContinue, exhaustionReason } from "./account.ts";
import { openChat, summarizeChat } from "./chats.ts";
import { outputBase } from "./output-base.ts";

/**
 * Session lifecycle of a chat. A resume is honoured only if the account can continue; otherwise the
 * chat stays paused for lack of tokens. Finalize emits the chat's summary and drops it from the state,
 * so an account document holds open chats only. Mutates `account`.
 */
export function applySession(account: AccountState, record: SessionRecord, outputs: Output[]): void {
  const base = outputBase(record);
  if (account.level === "app_usage") account.mozaiks_user_id = record.mozaiks_user_id;
  const chat = openChat(account, record.chat_id, {
    session_id: record.session_id,
    workflow_name: record.workflow_name,
    started_at: record.occurred_at,
    occurred_at: record.occurred_at,
  });
  const resumable = canContinue(account);
  if (record.event === "pause") {
    chat.paused = true;
    chat.pause_reason = record.pause_reason ?? "user_requested";
    chat.can_resume = resumable;
  } else if (record.event === "resume") {
    chat.paused = !resumable;
    chat.pause_reason = resumable ? null : exhaustionReason(account);
    chat.can_resume = false;
  }
  outputs.push({
    kind: "session_event",
    ...base,
    event: record.event,
    session_id: record.session_id,
    chat_id: record.chat_id,
    workflow_name: record.workflow_name,
    chat_paused: chat.paused,
    pause_reason: chat.pause_reason,
    can_resume: chat.can_resume,
    can_continue: resumable,
  });
  if (record.event === "finalize") {
    outputs.push(summarizeChat(record.chat_id, chat, record.occurred_at, base));
    delete account.chats[record.chat_id];
  }
}
