import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { budgetStateOf, trialUsageOf } from "../../pipeline/core/index.ts";
import { budgetStateSchema } from "../../schemas/index.ts";
import {
  accountOf,
  at,
  budgetEvents,
  config,
  credit,
  ofKind,
  PLATFORM_IDS,
  run,
  session,
  tokens,
  usage,
} from "./builders.ts";

describe("budgets", () => {
  test("Given a new end user, When first seen, Then the app's trial allowance applies (per app override too)", () => {
    assert.equal(accountOf(run([usage(tokens(1))]).state).allowance_tokens, 10_000);
    const cfg = config({ app_trial_tokens: { per_app: { app_456: 2_000 } } });
    assert.equal(accountOf(run([usage(tokens(1))], cfg).state).allowance_tokens, 2_000);
  });
  test("Given a new creator, When first seen, Then the platform allowance applies", () => {
    const { state } = run([usage({ ...PLATFORM_IDS, ...tokens(1) })]);
    assert.equal(accountOf(state, "platform:user_123").allowance_tokens, 100_000);
  });
  test("Given trial and credits, When usage exceeds the trial, Then the trial is drawn first, then paid", () => {
    const { outputs, state } = run([
      credit({ tokens: 5_000 }),
      usage({ record_id: "u-1", ...tokens(8_000), occurred_at: at(1) }),
      usage({ record_id: "u-2", ...tokens(4_000), occurred_at: at(2) }),
      usage({ record_id: "u-3", ...tokens(1_000), occurred_at: at(3) }),
    ]);
    const outcomes = ofKind(outputs, "usage_outcome");
    assert.deepEqual(
      outcomes.map((o) => [o.decision, o.trial_tokens_used, o.paid_tokens_used]),
      [
        ["trial", 8_000, 0],
        ["mixed", 2_000, 2_000],
        ["paid", 0, 1_000],
      ],
    );
    assert.deepEqual(outcomes[2]!.balance_after, {
      allowance_tokens: 10_000,
      trial_used_tokens: 10_000,
      trial_remaining_tokens: 0,
      paid_tokens: 2_000,
      available_tokens: 2_000,
    });
    assert.equal(accountOf(state).credited_tokens - accountOf(state).paid_used_tokens, 2_000);
  });
  test("Given 80% and 100% thresholds, When usage crosses them, Then each is raised once", () => {
    const { outputs } = run([
      usage({ record_id: "u-1", ...tokens(8_500), occurred_at: at(1) }),
      usage({ record_id: "u-2", ...tokens(100), occurred_at: at(2) }),
    ]);
    const raised = ofKind(outputs, "budget_event").filter((e) => e.event === "threshold_reached");
    assert.deepEqual(
      raised.map((e) => e.event === "threshold_reached" && [e.record_id, e.threshold_bp, e.used_bp]),
      [["u-1", 8_000, 8_500]],
    );
  });
  test("Given a raised threshold, When a credit brings usage below it, Then it is re-armed and raised again later", () => {
    const { outputs } = run([
      usage({ record_id: "u-1", ...tokens(9_000), occurred_at: at(1) }),
      credit({ tokens: 10_000, occurred_at: at(2) }),
      usage({ record_id: "u-2", ...tokens(7_000), occurred_at: at(3) }),
    ]);
    const raised = ofKind(outputs, "budget_event").flatMap((e) =>
      e.event === "threshold_reached" ? [[e.record_id, e.threshold_bp]] : [],
    );
    assert.deepEqual(raised, [
      ["u-1", 8_000],
      ["u-2", 8_000],
    ]);
  });
  test("Given a trial used up, When more usage comes on the same chat, Then one pause, metered overdraft", () => {
    const { outputs, state } = run([
      usage({ record_id: "u-1", ...tokens(10_000), occurred_at: at(1) }),
      usage({ record_id: "u-2", ...tokens(500), occurred_at: at(2) }),
      usage({ record_id: "u-3", ...tokens(500), occurred_at: at(3) }),
    ]);
    const exhausted = ofKind(outputs, "budget_event").filter((e) => e.event === "exhausted");
    assert.equal(exhausted.length, 1);
    assert.equal(exhausted[0]?.event === "exhausted" && exhausted[0].pause_reason, "trial_exhausted");
    const outcomes = ofKind(outputs, "usage_outcome");
    assert.deepEqual(
      outcomes.map((o) => [o.decision, o.can_continue, o.chat_paused]),
      [
        ["trial", false, true],
        ["overdraft", false, true],
        ["overdraft", false, true],
      ],
    );
    assert.equal(outcomes[2]!.balance_after.paid_tokens, -1_000);
    assert.equal(outcomes[2]!.billed_micros, 15_000n);
    assert.equal(budgetEvents(outputs).filter((e) => e === "overdraft").length, 1);
    assert.deepEqual(budgetStateOf(accountOf(state)).paused_chats, [
      { chat_id: "chat-1", pause_reason: "trial_exhausted", can_resume: false },
    ]);
  });
  test("Given an exhausted account, When two chats go on, Then each chat is paused once", () => {
    const { outputs } = run([
      usage({ record_id: "u-1", ...tokens(10_000), occurred_at: at(1) }),
      usage({ record_id: "u-2", chat_id: "chat-2", ...tokens(1), occurred_at: at(2) }),
      usage({ record_id: "u-3", chat_id: "chat-2", ...tokens(1), occurred_at: at(3) }),
    ]);
    const paused = ofKind(outputs, "budget_event").flatMap((e) =>
      e.event === "exhausted" ? [e.chat_id] : [],
    );
    assert.deepEqual(paused, ["chat-1", "chat-2"]);
  });
  test("Given paused chats, When a credit makes the account positive, Then each becomes resumable once", () => {
    const { outputs, state } = run([
      usage({ record_id: "u-1", ...tokens(10_500), occurred_at: at(1) }),
      credit({ record_id: "c-1", tokens: 300, occurred_at: at(2) }),
      credit({ record_id: "c-2", tokens: 1_000, occurred_at: at(3) }),
      credit({ record_id: "c-3", tokens: 1_000, occurred_at: at(4) }),
    ]);
    const credits = ofKind(outputs, "credit_applied");
    assert.deepEqual(
      credits.map((c) => [c.balance_after.paid_tokens, c.can_continue]),
      [
        [-200, false],
        [800, true],
        [1_800, true],
      ],
    );
    const resumable = ofKind(outputs, "budget_event").filter((e) => e.event === "resumable");
    assert.deepEqual(
      resumable.map((e) => e.record_id),
      ["c-2"],
    );
    const view = budgetStateOf(accountOf(state));
    assert.equal(view.can_continue, true);
    assert.deepEqual(view.paused_chats, [
      { chat_id: "chat-1", pause_reason: "trial_exhausted", can_resume: true },
    ]);
  });
  test("Given a resumable chat, When the runtime resumes it, Then it is active; a resume without tokens is refused", () => {
    const { outputs } = run([
      usage({ record_id: "u-1", ...tokens(10_000), occurred_at: at(1) }),
      session({ record_id: "s-1", event: "resume", occurred_at: at(2) }),
      credit({ record_id: "c-1", tokens: 100, occurred_at: at(3) }),
      session({ record_id: "s-2", event: "resume", occurred_at: at(4) }),
    ]);
    const events = ofKind(outputs, "session_event");
    assert.deepEqual(
      events.map((e) => [e.chat_paused, e.pause_reason, e.can_continue]),
      [
        [true, "trial_exhausted", false],
        [false, null, true],
      ],
    );
  });
  test("Given credits were bought, When the account runs out, Then the reason is insufficient_tokens", () => {
    const { outputs } = run([
      credit({ tokens: 100 }),
      usage({ record_id: "u-1", ...tokens(10_100), occurred_at: at(1) }),
    ]);
    const exhausted = ofKind(outputs, "budget_event").find((e) => e.event === "exhausted");
    assert.equal(exhausted?.event === "exhausted" && exhausted.pause_reason, "insufficient_tokens");
  });
  test("Given a creator's platform allowance used up, Then the reason is allowance_exhausted", () => {
    const { outputs } = run([
      credit({ ...PLATFORM_IDS, kind: "budget_set", tokens: 1_000 }),
      usage({ ...PLATFORM_IDS, ...tokens(1_000), occurred_at: at(1) }),
    ]);
    const exhausted = ofKind(outputs, "budget_event").find((e) => e.event === "exhausted");
    assert.equal(exhausted?.event === "exhausted" && exhausted.pause_reason, "allowance_exhausted");
  });
  test("Given budget_set, Then the allowance is replaced and trial already used stays used", () => {
    const { state } = run([
      usage({ record_id: "u-1", ...tokens(4_000), occurred_at: at(1) }),
      credit({ record_id: "c-1", kind: "budget_set", tokens: 3_000, occurred_at: at(2) }),
    ]);
    const account = accountOf(state);
    assert.deepEqual([account.allowance_tokens, account.trial_used_tokens], [3_000, 4_000]);
    assert.equal(budgetStateOf(account).trial_remaining_tokens, 0);
    assert.equal(budgetStateOf(account).can_continue, false);
    assert.equal(trialUsageOf(budgetStateOf(account)).trial_used_tokens, 4_000, "what the SDK reports");
  });
  test("Given a period that carried tokens in, Then the trial used the SDK reports is this period's, never negative", () => {
    const monthly = config({
      platform_allowance_tokens: 1_000,
      allowance_period: { platform: { every: "month", rollover_max_tokens: 500 } },
    });
    const { state } = run(
      [
        usage({ ...PLATFORM_IDS, record_id: "u-1", ...tokens(200), occurred_at: "2025-01-10T00:00:00Z" }),
        usage({ ...PLATFORM_IDS, record_id: "u-2", ...tokens(100), occurred_at: "2025-02-03T00:00:00Z" }),
      ],
      monthly,
    );
    const published = budgetStateOf(accountOf(state, "platform:user_123"));
    assert.equal(published.period?.carried_tokens, 500);
    const expected = {
      allowance_tokens: 1_000,
      trial_used_tokens: 100,
      trial_remaining_tokens: 1_400,
      is_free_trial: true,
    };
    assert.deepEqual(trialUsageOf(published), expected);
    // A state published before the field existed: read from what it shows, carried tokens counted
    const { trial_used_tokens: _used, ...older } = published;
    assert.deepEqual(trialUsageOf(budgetStateSchema.parse(older)), expected);
  });
});
