import type { Output, SessionRecord } from "../../schemas/index.ts";
import { type AccountState, canContinue, exhaustionReason } from "./account.ts";
import type { BillingConfig } from "./billing-config.ts";
import { closeChat, openChat, summarizeChat } from "./chats.ts";
import { type OutputBase, outputBase } from "./output-base.ts";

/**
 * Session lifecycle of a chat. A resume is honoured only if the account can continue; otherwise the
 * chat stays paused for lack of tokens. Finalize emits the chat's summary and drops it from the state,
 * so an account document holds open chats only; finalizing a chat that is not open emits its
 * session_event but no summary (an empty one would distort workflow averages and session counts).
 * Mutates `account`.
 */
export function applySession(
  account: AccountState,
  record: SessionRecord,
  config: BillingConfig,
  outputs: Output[],
  base: OutputBase = outputBase(record),
): void {
  const resumable = canContinue(account);
  if (record.event === "finalize" && !Object.hasOwn(account.chats, record.chat_id)) {
    outputs.push({
      kind: "session_event",
      ...base,
      event: record.event,
      session_id: record.session_id,
      chat_id: record.chat_id,
      workflow_name: record.workflow_name,
      chat_paused: false,
      pause_reason: null,
      can_resume: false,
      can_continue: resumable,
    });
    return;
  }
  const chat = openChat(
    account,
    record.chat_id,
    {
      session_id: record.session_id,
      workflow_name: record.workflow_name,
      started_at: record.occurred_at,
      occurred_at: record.occurred_at,
    },
    { max_open_chats: config.max_open_chats, base, outputs },
  );
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
    closeChat(account, record.chat_id);
  }
}
