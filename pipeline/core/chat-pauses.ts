import type { Output } from "../../schemas/index.ts";
import type { ChatState } from "./account.ts";

/** What a chat's pause document says of it: the one place the four states are decided. */
export type ChatStatus = "active" | "paused" | "resumable" | "finalized";

/** A chat no longer in its account's state has finished. */
export function chatStatus(chat: ChatState | undefined): ChatStatus {
  if (chat === undefined) return "finalized";
  if (!chat.paused) return "active";
  return chat.can_resume ? "resumable" : "paused";
}

/** The chat whose pause state this output changes, if any (most chats never pause: nothing to record). */
export function pausedChatOf(output: Output): string | undefined {
  if (output.kind === "budget_event" && (output.event === "exhausted" || output.event === "resumable"))
    return output.chat_id;
  if (output.kind !== "session_event") return undefined;
  if (output.event === "pause" || output.event === "resume") return output.chat_id;
  if (output.event === "finalize" && (output.chat_paused || output.can_resume)) return output.chat_id;
  return undefined;
}

/** A chat finalized while not paused may still have a pause record from earlier: it is marked finalized. */
export function finalizedChatOf(output: Output): string | undefined {
  return output.kind === "session_event" &&
    output.event === "finalize" &&
    !output.chat_paused &&
    !output.can_resume
    ? output.chat_id
    : undefined;
}

/** Whether this output ends its chat (finalized, paused or not). */
export function endsChat(output: Output): output is Output & { kind: "session_event"; chat_id: string } {
  return output.kind === "session_event" && output.event === "finalize";
}
