import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import type { AgentUsage } from "../../schemas/index.ts";
import {
  Agentmeter,
  PlatformTokenManager,
  RecordInvalidError,
  TokenManager,
  uuidv7,
} from "../../sdk/index.ts";
import { uuidv7Time } from "../../sdk/record-id.ts";

/** A usage record of the test's end user, with the fields a case sets. */
function appUsage(fields: {
  record_id?: string;
  agent_usage: Record<string, AgentUsage>;
  occurred_at: string;
}) {
  return {
    type: "usage" as const,
    level: "app_usage" as const,
    enterprise_id: "app-1",
    mozaiks_user_id: "creator-1",
    platform_user_id: "user-1",
    workflow_type: "chat_interaction",
    workflow_name: "chat",
    session_id: "s1",
    chat_id: "c1",
    ...fields,
  };
}

const billing = parseBillingConfig({
  app_trial_tokens: { default: 3_000 },
  platform_allowance_tokens: 5_000,
});

describe("SDK record ids", () => {
  it("are UUIDv7, time-ordered and unique in a burst", () => {
    const ids = Array.from({ length: 20_000 }, () => uuidv7());
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual([...ids].sort(), ids, "ids sort in creation order");
    assert.match(ids[0]!, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(Math.abs(uuidv7Time(ids[0]!) - Date.now()) < 5_000);
  });
});

describe("SDK validation", () => {
  it("a bad record is a thrown RecordInvalidError naming the field, and nothing is applied", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    await assert.rejects(
      meter.send(
        appUsage({
          agent_usage: { CustomerAgent: { prompt_tokens: -5, completion_tokens: 1 } },
          occurred_at: new Date().toISOString(),
        }),
      ),
      (error: unknown) =>
        error instanceof RecordInvalidError &&
        isAgentmeterError(error, "RECORD_INVALID") &&
        error.fields.includes("agent_usage.CustomerAgent.prompt_tokens"),
    );
    assert.equal(meter.mock!.outputs.length, 0);
    await meter.close();
  });

  it("an event time the analytics store cannot hold (before 1970, after 2106-02-07) is refused at the call, naming the field", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const usage = { CustomerAgent: { prompt_tokens: 5, completion_tokens: 1 } };
    await assert.rejects(
      meter.send(appUsage({ agent_usage: usage, occurred_at: "1969-12-31T23:59:59Z" })),
      (error: unknown) =>
        error instanceof RecordInvalidError &&
        error.fields.includes("occurred_at") &&
        /occurred_at 1969-12-31T23:59:59Z is outside 1970-01-01T00:00:00.000Z\.\.2106/.test(error.message),
    );
    await assert.rejects(
      meter.send({
        ...appUsage({ agent_usage: usage, occurred_at: new Date().toISOString() }),
        started_at: "2200-01-01T00:00:00Z",
      }),
      (error: unknown) => error instanceof RecordInvalidError && error.fields.includes("started_at"),
    );
    assert.equal(meter.mock!.outputs.length, 0);
    await meter.close();
  });

  it("an unknown model is refused before sending", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, {
      enterprise_id: "app-1",
      mozaiks_user_id: "creator-1",
      platform_user_id: "user-1",
      workflow_name: "chat",
    });
    await assert.rejects(
      manager.trackUsage({ A: { prompt_tokens: 1, completion_tokens: 1, model: "no-such-model" } }),
      (error: unknown) => isAgentmeterError(error, "UNKNOWN_MODEL"),
    );
    await meter.close();
  });

  it("a refused trackUsage keeps the tracked response time and messages for the corrected retry", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, {
      enterprise_id: "app-1",
      mozaiks_user_id: "creator-1",
      platform_user_id: "user-1",
      workflow_name: "chat",
    });
    await manager.initializeBudget();
    manager.trackAgentResponseTime("B", 500);
    manager.trackAgentMessage("B");
    await assert.rejects(
      manager.trackUsage({ B: { prompt_tokens: -1, completion_tokens: 1 } }),
      (error: unknown) => isAgentmeterError(error, "RECORD_INVALID"),
    );
    await assert.rejects(
      manager.trackUsage({ B: { prompt_tokens: 1, completion_tokens: 1, model: "no-such-model" } }),
      (error: unknown) => isAgentmeterError(error, "UNKNOWN_MODEL"),
    );
    await manager.trackUsage({ B: { prompt_tokens: 1, completion_tokens: 1 } });
    const agentB = () => meter.mock!.account(manager.accountKey)?.chats[manager.chat_id]?.agents.B;
    assert.equal(agentB()?.response_time_ms, 500);
    assert.equal(agentB()?.message_count, 1);
    // Sent once: the next record does not carry them again.
    await manager.trackUsage({ B: { prompt_tokens: 1, completion_tokens: 1 } });
    assert.equal(agentB()?.response_time_ms, 500);
    assert.equal(agentB()?.message_count, 1);
    await meter.close();
  });
});

describe("SDK mock mode: the billing core in process", () => {
  it("an app chat runs out of trial, pauses with the reason, resumes after a top-up, and finalizes with the core's summary", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, {
      enterprise_id: "app-1",
      mozaiks_user_id: "creator-1",
      platform_user_id: "user-1",
      workflow_name: "chat",
    });
    const start = await manager.initializeBudget();
    assert.equal(start.can_continue, true);
    assert.equal(start.available_tokens, 3_000);
    let turns = 0;
    while (await manager.canContinue()) {
      manager.trackAgentResponseTime("CustomerAgent", 120);
      manager.trackAgentMessage("CustomerAgent", "hello", "assistant");
      await manager.trackUsage({ CustomerAgent: { prompt_tokens: 400, completion_tokens: 300 } });
      turns++;
    }
    assert.equal(turns, 5, "3,000 trial tokens last 5 turns of 700");
    const exhausted = await manager.budgetStatus();
    assert.equal(exhausted.pause_reason, "trial_exhausted");
    assert.equal(exhausted.chat?.paused, true);
    assert.equal(await manager.canResumeChat(), false);
    assert.equal(await manager.resumeChat(), false);
    await manager.handleNoTokens();
    await manager.topUp(10_000, 200_000);
    assert.equal(await manager.canContinue(), true);
    assert.equal(await manager.canResumeChat(), true);
    assert.equal(await manager.resumeChat(), true);
    assert.equal((await manager.budgetStatus()).chat?.paused, false);
    await manager.trackUsage({ CustomerAgent: { prompt_tokens: 100, completion_tokens: 100 } });
    const result = await manager.finalizeSession();
    const core = meter.mock!.outputs.find((output) => output.kind === "session_summary");
    assert.ok(core !== undefined && core.kind === "session_summary");
    assert.equal(result.session_summary.total_tokens, 5 * 700 + 200);
    assert.equal(result.session_summary.total_tokens, core.total_tokens);
    assert.equal(result.session_summary.total_cost_micros, core.total_cost_micros);
    assert.deepEqual(result.agent_performance, core.agent_performance);
    assert.equal(result.agent_performance.CustomerAgent?.message_count, 5);
    assert.equal(result.cost_analysis.status, "no_baseline");
    const trial = await manager.trackTrialUsage();
    assert.equal(trial.trial_remaining_tokens, 0);
    const data = await manager.loadAppUserData();
    assert.equal(data?.tokens_used, 3_700);
    await meter.close();
  });

  it("a platform session compares itself with the workflow's averages once there is a baseline", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing: parseBillingConfig({}) });
    const run = async (tokens: number) => {
      const manager = new PlatformTokenManager(meter, {
        enterprise_id: "app-9",
        mozaiks_user_id: "creator-9",
        workflow_name: "Generator",
      });
      await manager.initializePlatformBudget();
      await manager.trackPlatformUsage({
        ConceptAgent: { prompt_tokens: tokens, completion_tokens: tokens },
      });
      return manager.finalizePlatformSession();
    };
    for (let i = 0; i < 3; i++) await run(1_000);
    const big = await run(5_000);
    assert.equal(big.workflow_averages?.session_count, 3);
    assert.equal(big.cost_analysis.status, "exceeded");
    assert.equal(big.cost_analysis.cost_ratio_bp, 50_000);
    await meter.close();
  });
});

describe("SDK misuse answered at the call that makes it", () => {
  const app = {
    enterprise_id: "app-1",
    mozaiks_user_id: "creator-1",
    platform_user_id: "user-1",
    workflow_name: "chat",
  };

  it("a bad response time or agent name is refused at trackAgentResponseTime / trackAgentMessage, and the session goes on", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, app);
    await manager.initializeBudget();
    for (const [agent, ms] of [
      ["A", Number.NaN],
      ["A", -5],
      ["A", "100" as unknown as number],
      ["A", 86_400_001],
      ["Customer Agent", 10],
      ["__proto__", 10],
    ] as [string, number][]) {
      assert.throws(
        () => manager.trackAgentResponseTime(agent, ms),
        (error) => error instanceof RecordInvalidError && error.code === "RECORD_INVALID",
        `${agent} ${String(ms)}`,
      );
    }
    assert.throws(() => manager.trackAgentMessage("Customer Agent"), RecordInvalidError);
    // A sum past a day is refused at the call that passes it, the earlier figures kept.
    manager.trackAgentResponseTime("A", 86_000_000);
    assert.throws(() => manager.trackAgentResponseTime("A", 500_000), RecordInvalidError);
    manager.trackAgentResponseTime("A", 400_000);
    const receipt = await manager.trackUsage({ A: { prompt_tokens: 10, completion_tokens: 10 } });
    assert.equal(receipt.tokens_used, 20);
    assert.equal((await manager.finalizeSession()).agent_performance.A?.total_response_time_ms, 86_400_000);
    await meter.close();
  });

  it("a manager without its account's ids is refused when it is made (typed), not answered for an account that cannot exist", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const { platform_user_id: _user, ...noUser } = app;
    const { mozaiks_user_id: _creator, ...noCreator } = app;
    for (const make of [
      () => new TokenManager(meter, noUser as never),
      () => new TokenManager(meter, { ...app, enterprise_id: "App 1" }),
      () => new PlatformTokenManager(meter, noCreator as never),
    ])
      assert.throws(make, (error) => error instanceof RecordInvalidError && error.code === "RECORD_INVALID");
    await meter.close();
  });

  it("after close(), mock mode refuses new sends with SDK_CLOSED, as the Kafka backend does", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, app);
    await manager.initializeBudget();
    await meter.close();
    await assert.rejects(
      () => manager.trackUsage({ A: { prompt_tokens: 10, completion_tokens: 10 } }),
      (error) => isAgentmeterError(error, "SDK_CLOSED"),
    );
    await assert.rejects(
      () => manager.topUp(100, 1_000),
      (error) => isAgentmeterError(error, "SDK_CLOSED"),
    );
    assert.equal(meter.mock!.outputs.filter((output) => output.kind === "usage_outcome").length, 0);
  });

  it("mock mode refuses a record dated in the future (RECORD_TIME_SKEW) as the processor does, so it cannot make the account's later records too late", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const usageAt = (record_id: string, occurred_at: string) =>
      meter.send(
        appUsage({
          record_id,
          agent_usage: { A: { prompt_tokens: 10, completion_tokens: 10 } },
          occurred_at,
        }),
      );
    await usageAt("u-future", "2100-01-01T00:00:00Z");
    await usageAt("u-past", "2025-07-28T10:00:00Z");
    const outputs = meter.mock!.outputs;
    assert.deepEqual(
      outputs.filter((o) => o.kind === "rejected").map((o) => [o.record_id, o.kind === "rejected" && o.code]),
      [["u-future", "RECORD_TIME_SKEW"]],
    );
    assert.deepEqual(
      outputs.filter((o) => o.kind === "usage_outcome").map((o) => o.record_id),
      ["u-past"],
      "a record of a past date is still applied (tests replay such records)",
    );
    await meter.close();
  });

  it("the session summary stays the core's: a usage record sent again counts once, and usage after a finalize starts a new tally", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, app);
    const turn = { A: { prompt_tokens: 100, completion_tokens: 100 } };
    await manager.trackUsage(turn, { record_id: "turn-1" });
    await manager.trackUsage(turn, { record_id: "turn-1" });
    const first = await manager.finalizeSession();
    await manager.trackUsage({ A: { prompt_tokens: 50, completion_tokens: 0 } });
    const second = await manager.finalizeSession();
    const core = meter.mock!.outputs.flatMap((o) => (o.kind === "session_summary" ? [o.total_tokens] : []));
    assert.deepEqual(core, [200, 50]);
    assert.deepEqual([first.session_summary.total_tokens, second.session_summary.total_tokens], core);
    await meter.close();
  });

  it("checkWorkflowCostThresholds with a minSessions that is not a whole number: CONFIG_INVALID, not a baseline of one session", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, app);
    await manager.initializeBudget();
    for (const minSessions of [Number.NaN, -1, 1.5])
      await assert.rejects(
        () => manager.checkWorkflowCostThresholds({ minSessions }),
        (error) => isAgentmeterError(error, "CONFIG_INVALID"),
        String(minSessions),
      );
    await meter.close();
  });
});
