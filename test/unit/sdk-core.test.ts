import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  applyRecord,
  budgetStateOf,
  chatBudgetOf,
  emptyChat,
  freshBudgetState,
  tokenTotals,
  trialUsageOf,
} from "../../pipeline/core/index.ts";
import { APP_IDS, config, ofKind, PLATFORM_IDS, session, usage } from "./builders.ts";

/**
 * The rules the SDK reads through the core's small modules must give what the processor's own rules
 * give for the same account: these tests hold them to the account the core creates on a first record.
 */
const billing = config({
  app_trial_tokens: { default: 3_000, per_app: { app_456: 7_000 } },
  platform_allowance_tokens: 5_000,
});

describe("the core's answers for a client", () => {
  for (const [name, ids] of [
    ["app end user (per-app trial)", APP_IDS],
    ["creator (platform allowance)", PLATFORM_IDS],
  ] as const) {
    it(`a fresh account's budget state is the state the first record finds: ${name}`, () => {
      const first = applyRecord(undefined, session({ ...ids, event: "start" }), billing);
      // The period is opened by the first record, at its event time: a fresh account has none yet.
      const { period, ...applied } = budgetStateOf(first.account!);
      assert.deepEqual(freshBudgetState(ids, billing), { ...applied, as_of: null });
      assert.equal(
        period?.start,
        ids.level === "platform" ? "2025-07-01T00:00:00.000Z" : undefined,
        "a creator's allowance is monthly by default, an end user's trial one-off",
      );
    });
  }

  it("an allowance of zero: a fresh account cannot continue, with its level's reason", () => {
    const none = config({ app_trial_tokens: { default: 0 }, platform_allowance_tokens: 0 });
    const app = freshBudgetState({ ...APP_IDS, enterprise_id: "other" }, none);
    assert.equal(app.can_continue, false);
    assert.equal(app.pause_reason, "trial_exhausted");
    assert.equal(freshBudgetState(PLATFORM_IDS, none).pause_reason, "allowance_exhausted");
  });

  it("an empty chat is the chat the core opens on a session start", () => {
    const start = session({ event: "start", occurred_at: "2025-07-28T10:00:00Z" });
    const opened = applyRecord(undefined, start, billing).account!.chats[start.chat_id];
    assert.deepEqual(
      emptyChat({
        session_id: start.session_id,
        workflow_name: start.workflow_name,
        started_at: start.occurred_at,
      }),
      opened,
    );
  });

  it("token totals equal the processor's usage outcome", () => {
    const record = usage({
      agent_usage: {
        A: { prompt_tokens: 120, completion_tokens: 30 },
        B: { prompt_tokens: 7, completion_tokens: 900 },
      },
    });
    const [outcome] = ofKind(applyRecord(undefined, record, billing).outputs, "usage_outcome");
    assert.deepEqual(tokenTotals(record.agent_usage), {
      prompt_tokens: outcome!.prompt_tokens,
      completion_tokens: outcome!.completion_tokens,
      total_tokens: outcome!.tokens_used,
    });
  });

  it("a chat's budget and the trial figures read off the published state", () => {
    const exhausting = usage({ agent_usage: { A: { prompt_tokens: 7_000, completion_tokens: 1 } } });
    const state = budgetStateOf(applyRecord(undefined, exhausting, billing).account!);
    assert.deepEqual(chatBudgetOf(state, exhausting.chat_id), {
      chat_id: exhausting.chat_id,
      paused: true,
      pause_reason: "trial_exhausted",
      can_resume: false,
    });
    assert.deepEqual(chatBudgetOf(state, "another-chat"), {
      chat_id: "another-chat",
      paused: false,
      pause_reason: null,
      can_resume: false,
    });
    assert.deepEqual(trialUsageOf(state), {
      allowance_tokens: 7_000,
      trial_used_tokens: 7_000,
      trial_remaining_tokens: 0,
      is_free_trial: false,
    });
    assert.equal(trialUsageOf(freshBudgetState(APP_IDS, billing)).is_free_trial, true);
  });
});
