import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type AccountState, applyBatch, defaultBillingConfig } from "../../pipeline/core/index.ts";
import { PauseDocuments } from "../../pipeline/processor/pause-documents.ts";
import { projectionWrites } from "../../pipeline/processor/plan-projections.ts";
import type { InputRecord } from "../../schemas/index.ts";
import { at, run, session, tokens, usage } from "./builders.ts";

const ACCOUNT = "app:app_456:enduser_789";

function pausedChatWrites(
  state: Parameters<typeof applyBatch>[0],
  records: readonly InputRecord[],
  pauses: PauseDocuments,
) {
  const result = applyBatch(
    state,
    records.map((record) => ({ record })),
    defaultBillingConfig,
  );
  const accounts = new Map<string, AccountState>(Object.entries(result.state.accounts));
  const writes = projectionWrites(accounts, result.outputs, new Set(), pauses).filter(
    (write) => write.target.collection === "pausedChats",
  );
  return { state: result.state, writes };
}

const started = session({ record_id: "s-start", event: "start", occurred_at: at(0) });
const used = usage({ record_id: "u-1", occurred_at: at(1), ...tokens(100, 100) });
const finalized = session({ record_id: "s-end", event: "finalize", occurred_at: at(9) });

describe("pause documents: written when a chat pauses, marked when it finishes, never for chats that never paused", () => {
  it("a chat that never paused finishes without any PausedChats write", () => {
    const { writes } = pausedChatWrites(run([]).state, [started, used, finalized], new PauseDocuments());
    assert.deepEqual(writes, []);
  });

  it("a chat paused and resumed in one flush and finished in the next gets its document marked finalized", () => {
    const pauses = new PauseDocuments();
    const first = pausedChatWrites(
      run([]).state,
      [
        started,
        used,
        session({ record_id: "s-pause", event: "pause", occurred_at: at(2) }),
        session({ record_id: "s-resume", event: "resume", occurred_at: at(3) }),
      ],
      pauses,
    );
    assert.equal(first.writes.length, 1);
    assert.equal(first.writes[0]!.doc?.status, "active");
    const second = pausedChatWrites(first.state, [finalized], pauses);
    assert.equal(second.writes.length, 1);
    assert.equal(second.writes[0]!.ifExists, true);
    assert.equal(second.writes[0]!.doc?.status, "finalized");
    assert.equal(pauses.has(ACCOUNT, "chat-1"), false, "a finished chat is forgotten");
  });

  it("a chat already open when its account was loaded may have paused under an earlier owner: it is marked", () => {
    const before = run([started, used]).state;
    const pauses = new PauseDocuments();
    pauses.loaded(ACCOUNT, before.accounts[ACCOUNT]!.chats);
    const { writes } = pausedChatWrites(before, [finalized], pauses);
    assert.equal(writes.length, 1);
    assert.equal(writes[0]!.ifExists, true);
  });
});
