import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { microsToDecimalString } from "../../schemas/index.ts";
import { APP_IDS, at, credit, ofKind, PLATFORM_IDS, run, usage } from "./builders.ts";

/**
 * The seed's two example records, as input (its computed fields removed). Prices: the default
 * book's `default` model ($30 per million tokens), which reproduces the seed's cost figures.
 */
const seedPlatform = usage({
  record_id: "seed-platform",
  ...PLATFORM_IDS,
  workflow_type: "app_generation",
  session_id: "sess_abc123",
  chat_id: "chat_def456",
  workflow_name: "Generator",
  user_id: "platform_user_001",
  agent_usage: {
    ConceptAgent: { prompt_tokens: 5000, completion_tokens: 3000 },
    ArchitectAgent: { prompt_tokens: 4000, completion_tokens: 3000 },
  },
  started_at: "2025-07-28T10:00:00Z",
  ended_at: "2025-07-28T10:15:00Z",
  occurred_at: "2025-07-28T10:15:00Z",
  connection_state: "completed",
});

const seedApp = usage({
  record_id: "seed-app",
  ...APP_IDS,
  workflow_type: "chat_interaction",
  session_id: "sess_xyz789",
  chat_id: "chat_app_001",
  workflow_name: "default",
  agent_usage: { CustomerAgent: { prompt_tokens: 200, completion_tokens: 300 } },
  started_at: "2025-07-28T14:00:00Z",
  ended_at: "2025-07-28T14:05:00Z",
  occurred_at: "2025-07-28T14:05:00Z",
  connection_state: "active",
});

describe("the seed's example records", () => {
  test("Given the platform example from a creator without allowance left, Then tokens 15000, cost 0.45 billed to the mozaiks user, not a trial", () => {
    const records = [
      credit({ ...PLATFORM_IDS, record_id: "budget", kind: "budget_set", tokens: 0, occurred_at: at(0) }),
      credit({ ...PLATFORM_IDS, record_id: "topup", tokens: 100_000, occurred_at: at(1) }),
      seedPlatform,
    ];
    const outcome = ofKind(run(records).outputs, "usage_outcome")[0]!;
    assert.equal(outcome.tokens_used, 15_000);
    assert.equal(microsToDecimalString(outcome.cost_micros), "0.45");
    assert.equal(outcome.billing_target, "mozaiks_user");
    assert.equal(outcome.is_free_trial, false);
    assert.equal(microsToDecimalString(outcome.billed_micros), "0.45");
    assert.equal(outcome.can_continue, true);
  });
  test("Given the app example from an end user who used 750 trial tokens, Then tokens 500, cost 0.015, free trial, 1250 trial tokens used, nothing billed or shared", () => {
    const earlier = usage({
      ...APP_IDS,
      record_id: "earlier",
      chat_id: "chat_app_000",
      occurred_at: at(600),
    });
    const withEarlier = {
      ...earlier,
      agent_usage: { CustomerAgent: { prompt_tokens: 750, completion_tokens: 0 } },
    };
    const outcome = ofKind(run([withEarlier, seedApp]).outputs, "usage_outcome")[1]!;
    assert.equal(outcome.tokens_used, 500);
    assert.equal(microsToDecimalString(outcome.cost_micros), "0.015");
    assert.equal(outcome.billing_target, "platform_user");
    assert.equal(outcome.is_free_trial, true);
    assert.equal(outcome.balance_after.trial_used_tokens, 1_250);
    // The seed shows revenue_share 0.003 and mozaiks_fee 0.001 on a free-trial record; by the rules
    // (trial bills nothing) both are 0.
    assert.deepEqual(
      [outcome.billed_micros, outcome.creator_share_micros, outcome.platform_fee_micros],
      [0n, 0n, 0n],
    );
    assert.equal(outcome.can_continue, true);
    assert.equal(outcome.pause_reason, null);
  });
  test("Given the app example paid instead of trial, Then revenue_share 0.0105 and mozaiks_fee 0.0045 (70/30)", () => {
    const records = [
      credit({ record_id: "budget", kind: "budget_set", tokens: 0 }),
      credit({ tokens: 1_000 }),
      seedApp,
    ];
    const outcome = ofKind(run(records).outputs, "usage_outcome")[0]!;
    assert.equal(microsToDecimalString(outcome.creator_share_micros), "0.0105");
    assert.equal(microsToDecimalString(outcome.platform_fee_micros), "0.0045");
  });
});
