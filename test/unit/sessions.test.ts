import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { accountOf, at, ofKind, run, session, usage } from "./builders.ts";

describe("session tracking", () => {
  test("Given a chat with usage, When finalized, Then a summary is emitted and the chat leaves the state", () => {
    const agent = (prompt: number, ms: number, messages: number) => ({
      agent_usage: {
        ConceptAgent: {
          prompt_tokens: prompt,
          completion_tokens: 0,
          response_time_ms: ms,
          message_count: messages,
        },
      },
    });
    const { outputs, state } = run([
      session({ record_id: "s-1", event: "start", occurred_at: at(0) }),
      usage({ record_id: "u-1", ...agent(1_000, 1_000, 2), occurred_at: at(1) }),
      usage({ record_id: "u-2", ...agent(2_000, 340.5, 1), occurred_at: at(2) }),
      session({ record_id: "s-2", event: "finalize", occurred_at: at(5) }),
    ]);
    const summary = ofKind(outputs, "session_summary")[0]!;
    assert.equal(summary.total_tokens, 3_000);
    assert.equal(summary.total_cost_micros, 90_000n);
    assert.equal(summary.session_duration_seconds, 300);
    assert.deepEqual(summary.agents_used, ["ConceptAgent"]);
    assert.deepEqual(summary.agent_performance.ConceptAgent, {
      prompt_tokens: 3_000,
      completion_tokens: 0,
      total_response_time_ms: 1_340.5,
      message_count: 3,
      avg_response_time_ms: 446.83,
    });
    assert.deepEqual(accountOf(state).chats, {});
  });
  test("Given agents reporting token classes in some records, When finalized, Then each agent's summary sums the classes it reported and only those", () => {
    const records = [
      session({ record_id: "s-1", event: "start", occurred_at: at(0) }),
      usage({
        record_id: "u-1",
        agent_usage: {
          Planner: {
            prompt_tokens: 100,
            completion_tokens: 10,
            cached_prompt_tokens: 400,
            reasoning_tokens: 30,
          },
          Writer: { prompt_tokens: 50, completion_tokens: 5 },
        },
        occurred_at: at(1),
      }),
      usage({
        record_id: "u-2",
        agent_usage: { Planner: { prompt_tokens: 20, completion_tokens: 2, cached_prompt_tokens: 60 } },
        occurred_at: at(2),
      }),
    ];
    // While the chat is open, its agent totals carry the classes (the summary is made of them)
    assert.deepEqual(accountOf(run(records).state).chats["chat-1"]?.agents.Planner, {
      prompt_tokens: 120,
      completion_tokens: 12,
      cached_prompt_tokens: 460,
      reasoning_tokens: 30,
      response_time_ms: 0,
      message_count: 0,
    });
    const { outputs } = run([
      ...records,
      session({ record_id: "s-2", event: "finalize", occurred_at: at(5) }),
    ]);
    const summary = ofKind(outputs, "session_summary")[0]!;
    // Every class counts in the chat's tokens: 132 + 460 + 30 for Planner, 55 for Writer
    assert.equal(summary.total_tokens, 677);
    assert.deepEqual(summary.agent_performance.Planner, {
      prompt_tokens: 120,
      completion_tokens: 12,
      cached_prompt_tokens: 460,
      reasoning_tokens: 30,
      total_response_time_ms: 0,
      message_count: 0,
      avg_response_time_ms: null,
    });
    assert.deepEqual(summary.agent_performance.Writer, {
      prompt_tokens: 50,
      completion_tokens: 5,
      total_response_time_ms: 0,
      message_count: 0,
      avg_response_time_ms: null,
    });
  });
  test("Given a user pause, Then the chat is paused with its reason and resumable while the account can pay", () => {
    const { outputs } = run([session({ record_id: "s-1", event: "pause", pause_reason: "user_left" })]);
    const event = ofKind(outputs, "session_event")[0]!;
    assert.deepEqual([event.chat_paused, event.pause_reason, event.can_resume], [true, "user_left", true]);
  });
  test("Given usage on a paused chat of an account that can pay, Then the chat counts as resumed", () => {
    const { outputs } = run([
      session({ record_id: "s-1", event: "pause", occurred_at: at(0) }),
      usage({ record_id: "u-1", occurred_at: at(1) }),
    ]);
    assert.equal(ofKind(outputs, "usage_outcome")[0]?.chat_paused, false);
  });
});
