import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import { Agentmeter, TokenManager } from "../../sdk/index.ts";

const billing = parseBillingConfig({ app_trial_tokens: { default: 0 } });
const ids = {
  level: "app_usage",
  enterprise_id: "app-1",
  mozaiks_user_id: "creator-1",
  platform_user_id: "user-1",
} as const;

describe("SDK corrections and token classes (mock mode)", () => {
  it("a usage with token classes, refunded in part then voided: adjustments in the ledger, tokens back", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    await meter.topUp({ ...ids, tokens: 10_000, occurred_at: "2025-07-28T10:00:00Z" });
    await meter.send({
      type: "usage",
      record_id: "u-1",
      ...ids,
      workflow_type: "chat_interaction",
      workflow_name: "chat",
      session_id: "s1",
      chat_id: "c1",
      model: "gpt-4o",
      agent_usage: {
        A: { prompt_tokens: 1_000, completion_tokens: 0, cached_prompt_tokens: 1_000, reasoning_tokens: 10 },
      },
      occurred_at: "2025-07-28T10:01:00Z",
    });
    await meter.refund({
      ...ids,
      target_record_id: "u-1",
      amount_micros: "1000",
      occurred_at: "2025-07-28T10:02:00Z",
    });
    await meter.voidUsage({ ...ids, target_record_id: "u-1", occurred_at: "2025-07-28T10:03:00Z" });
    const outputs = meter.mock!.outputs;
    const outcome = outputs.find((o) => o.kind === "usage_outcome");
    // 1,000 x 2.5 + 1,000 x 1.25 + 10 x 10 (reasoning falls back to the completion price) = 3,850
    assert.equal(outcome?.kind === "usage_outcome" && outcome.cost_micros, 3_850n);
    assert.equal(outcome?.kind === "usage_outcome" && outcome.tokens_used, 2_010);
    const adjustments = outputs.filter((o) => o.kind === "adjustment");
    assert.deepEqual(
      adjustments.map((a) => (a.kind === "adjustment" ? [a.adjustment, a.billed_micros] : [])),
      [
        ["refund", -1_000n],
        ["void", -2_850n],
      ],
    );
    const account = meter.mock!.account("app:app-1:user-1")!;
    // The refund paid back 1,000 of 3,850 micros as money, so the void returns floor(2,010 x 2,850 / 3,850)
    // = 1,487 of the 2,010 paid tokens, not all of them (docs/billing.md, Corrections).
    assert.equal(account.paid_used_tokens, 523);
    await meter.close();
  });

  it("a dated grant through topUp: burned first, free, and expired by a later record", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    await meter.topUp({
      ...ids,
      kind: "grant",
      tokens: 100,
      priority: 1,
      expires_at: "2025-07-28T11:00:00Z",
      occurred_at: "2025-07-28T10:00:00Z",
    });
    assert.equal(meter.mock!.budgetState("app:app-1:user-1")?.grant_tokens, 100);
    await meter.topUp({ ...ids, tokens: 10, occurred_at: "2025-07-28T12:00:00Z" });
    const expired = meter.mock!.outputs.find((o) => o.kind === "budget_event" && o.event === "grant_expired");
    assert.ok(
      expired?.kind === "budget_event" &&
        expired.event === "grant_expired" &&
        expired.forfeited_tokens === 100,
    );
    await meter.close();
  });

  it("audio tokens on a model without an audio price are refused before sending", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, {
      enterprise_id: "app-1",
      mozaiks_user_id: "creator-1",
      platform_user_id: "user-1",
      workflow_name: "chat",
    });
    await assert.rejects(
      manager.trackUsage({ A: { prompt_tokens: 1, completion_tokens: 1, audio_tokens: 5, model: "gpt-4o" } }),
      (error: unknown) => isAgentmeterError(error, "UNPRICED_TOKEN_CLASS"),
    );
    await meter.close();
  });
});
