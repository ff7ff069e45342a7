import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { checkWorkflowCostThresholds, type WorkflowAverages } from "../../pipeline/core/cost-thresholds.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";

// Three sessions costing 300000 micros and 3000 tokens in all: average 100000 micros, 1000 tokens.
const averages: WorkflowAverages = {
  enterprise_id: "app-000",
  workflow_name: "chat",
  session_count: 3,
  total_cost_micros: 300_000n,
  total_tokens: 3_000,
  avg_session_duration_seconds: 42,
  avg_agents_per_session: 3,
};

describe("workflow cost thresholds (the seed's check_workflow_cost_thresholds)", () => {
  test("Given a session at exactly 2x the average, Then it is within: the threshold must be passed", () => {
    const analysis = checkWorkflowCostThresholds({
      currentCostMicros: 200_000n,
      currentTokens: 2_000,
      averages,
    });
    assert.equal(analysis.status, "within");
    assert.equal(analysis.threshold_cost_micros, 200_000n);
    assert.equal(analysis.cost_ratio_bp, 20_000);
  });
  test("Given one micro above 2x, Then exceeded, with the ratio and the average reported", () => {
    const analysis = checkWorkflowCostThresholds({
      currentCostMicros: 200_001n,
      currentTokens: 10,
      averages,
    });
    assert.equal(analysis.status, "exceeded");
    assert.equal(analysis.exceeds_cost_threshold, true);
    assert.equal(analysis.exceeds_token_threshold, false);
    assert.equal(analysis.average_cost_micros, 100_000n);
    assert.equal(analysis.average_tokens, 1_000);
    assert.equal(analysis.session_count, 3);
  });
  test("Given an average that does not divide, Then the comparison is exact (no float rounding)", () => {
    // average 100000/3 = 33333.33..; 1.5x = 50000 exactly
    const odd = { ...averages, total_cost_micros: 100_000n };
    assert.equal(
      checkWorkflowCostThresholds({
        currentCostMicros: 50_000n,
        currentTokens: 0,
        averages: odd,
        multiple: 1.5,
      }).status,
      "within",
    );
    assert.equal(
      checkWorkflowCostThresholds({
        currentCostMicros: 50_001n,
        currentTokens: 0,
        averages: odd,
        multiple: 1.5,
      }).status,
      "exceeded",
    );
  });
  test("Given a token-heavy but cheap session, Then the token flag is set and the status follows the cost", () => {
    const analysis = checkWorkflowCostThresholds({ currentCostMicros: 1n, currentTokens: 5_000, averages });
    assert.equal(analysis.exceeds_token_threshold, true);
    assert.equal(analysis.status, "within");
  });
  test("Given no finished session or fewer than minSessions, Then no baseline and nothing is flagged", () => {
    const none = checkWorkflowCostThresholds({
      currentCostMicros: 10n ** 12n,
      currentTokens: 1,
      averages: null,
    });
    assert.equal(none.status, "no_baseline");
    assert.equal(none.exceeds_cost_threshold, false);
    const few = checkWorkflowCostThresholds({
      currentCostMicros: 10n ** 12n,
      currentTokens: 1,
      averages,
      minSessions: 4,
    });
    assert.equal(few.status, "no_baseline");
    assert.equal(few.session_count, 3);
  });
  test("Given a workflow whose sessions cost nothing, Then any cost exceeds it and the ratio is null", () => {
    const free = { ...averages, total_cost_micros: 0n };
    const analysis = checkWorkflowCostThresholds({ currentCostMicros: 1n, currentTokens: 0, averages: free });
    assert.equal(analysis.status, "exceeded");
    assert.equal(analysis.cost_ratio_bp, null);
  });
  test("Given a multiple that is not a positive number, Then CONFIG_INVALID naming the value", () => {
    for (const multiple of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(
        () => checkWorkflowCostThresholds({ currentCostMicros: 1n, currentTokens: 0, averages, multiple }),
        (error) => isAgentmeterError(error, "CONFIG_INVALID") && error.message.includes(String(multiple)),
      );
    }
  });
});
