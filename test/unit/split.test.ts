import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { billedPart, splitRevenue } from "../../pipeline/core/index.ts";
import { config, credit, ofKind, PLATFORM_IDS, run, tokens, usage } from "./builders.ts";

describe("revenue split", () => {
  test("Given billed 10000 micros at 7000 bp, Then creator 7000 and platform 3000", () => {
    assert.deepEqual(splitRevenue(10_000n, 7_000), {
      creator_share_micros: 7_000n,
      platform_fee_micros: 3_000n,
    });
  });
  test("Given a billed amount that does not divide, Then the creator share is floored and the remainder goes to the platform", () => {
    assert.deepEqual(splitRevenue(7_503n, 7_000), {
      creator_share_micros: 5_252n,
      platform_fee_micros: 2_251n,
    });
    assert.deepEqual(splitRevenue(1n, 7_000), { creator_share_micros: 0n, platform_fee_micros: 1n });
  });
  test("Given a partly-trial record, Then only the paid part is billed: cost x paid / tokens, half up", () => {
    assert.equal(billedPart(15_600n, 1_500, 2_000), 11_700n);
    assert.equal(billedPart(5n, 1, 2), 3n);
    assert.equal(billedPart(999n, 0, 10), 0n);
    assert.equal(billedPart(999n, 10, 10), 999n);
  });
  test("Given app usage paid from credits, When applied, Then billed = cost, split 70/30, target platform_user", () => {
    const { outputs } = run([
      credit({ tokens: 100_000 }),
      usage({ ...tokens(20_000), occurred_at: "2025-07-28T10:01:00Z" }),
    ]);
    const outcome = ofKind(outputs, "usage_outcome")[0]!;
    // 10,000 trial tokens free, 10,000 paid: cost 0.60, billed 0.30.
    assert.equal(outcome.cost_micros, 600_000n);
    assert.equal(outcome.billed_micros, 300_000n);
    assert.equal(outcome.creator_share_micros, 210_000n);
    assert.equal(outcome.platform_fee_micros, 90_000n);
    assert.equal(outcome.billing_target, "platform_user");
    assert.equal(outcome.decision, "mixed");
  });
  test("Given a per-app share, Then that app uses it and others the default", () => {
    const cfg = config({ creator_share_bp: { per_app: { app_456: 8_000 } } });
    const { outputs } = run([credit({ tokens: 100_000 }), usage({ ...tokens(20_000) })], cfg);
    const outcome = ofKind(outputs, "usage_outcome")[0]!;
    assert.equal(outcome.creator_share_bp, 8_000);
    assert.equal(outcome.creator_share_micros, 240_000n);
  });
  test("Given trial-only app usage, Then nothing is billed or split", () => {
    const outcome = ofKind(run([usage(tokens(500))]).outputs, "usage_outcome")[0]!;
    assert.deepEqual(
      [outcome.cost_micros, outcome.billed_micros, outcome.creator_share_micros, outcome.platform_fee_micros],
      [15_000n, 0n, 0n, 0n],
    );
    assert.equal(outcome.is_free_trial, true);
  });
  test("Given platform usage past the allowance, Then the creator is billed and the platform keeps all of it", () => {
    const records = [
      credit({ ...PLATFORM_IDS, kind: "budget_set", tokens: 0 }),
      credit({ ...PLATFORM_IDS, record_id: "c-2", tokens: 50_000 }),
      usage({ ...PLATFORM_IDS, workflow_type: "app_generation", ...tokens(15_000) }),
    ];
    const outcome = ofKind(run(records).outputs, "usage_outcome")[0]!;
    assert.equal(outcome.billing_target, "mozaiks_user");
    assert.deepEqual(
      [
        outcome.billed_micros,
        outcome.creator_share_micros,
        outcome.platform_fee_micros,
        outcome.creator_share_bp,
      ],
      [450_000n, 0n, 450_000n, 0],
    );
  });
});
