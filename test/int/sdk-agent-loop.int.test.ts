import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Config } from "../../pipeline/config.ts";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import {
  Agentmeter,
  type PlatformTokenManager,
  type SessionResult,
  type TokenManager,
} from "../../sdk/index.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { COLLECTIONS } from "../../sinks/mongo/layout.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";

/** A small trial and allowance so that a loop runs out in a few turns. */
const billing = parseBillingConfig({
  app_trial_tokens: { default: 3_000 },
  platform_allowance_tokens: 5_000,
});
const TURN = { prompt_tokens: 400, completion_tokens: 300 };

type Manager = TokenManager | PlatformTokenManager;

/** The agent runtime's loop: work while the budget allows, waiting for the view to see each turn. */
async function runUntilExhausted(
  manager: Manager,
  track: (usage: Record<string, typeof TURN>) => Promise<unknown>,
) {
  let turns = 0;
  while (await manager.canContinue()) {
    assert.ok(turns < 20, "the budget should run out");
    manager.trackAgentResponseTime("PlannerAgent", 250);
    manager.trackAgentMessage("PlannerAgent", "a plan", "assistant");
    await track({ PlannerAgent: TURN, WriterAgent: { prompt_tokens: 100, completion_tokens: 50 } });
    turns++;
    await manager.syncBudget();
  }
  return turns;
}

describe("SDK agent loop on the real pipeline: exhaust, pause, top up, resume, finalize", () => {
  let config: Config;
  let pipeline: TestPipeline;
  let meter: Agentmeter;
  let mongo: ReturnType<typeof createMongo>;
  let clickhouse: ClickHouseClient;

  before(async () => {
    pipeline = await TestPipeline.create({ billing });
    config = pipeline.config;
    await pipeline.startProcessor();
    meter = await Agentmeter.connect({ config, billing });
    mongo = createMongo(config.MONGODB_URI);
    clickhouse = clickHouseFor(config);
  });

  after(async () => {
    await meter?.close();
    await pipeline?.close();
    await mongo?.close();
    await clickhouse?.close();
  });

  async function pauseDoc(db: string, collection: string, chatId: string) {
    return mongo.db(db).collection(collection).findOne({ chat_id: chatId });
  }

  /** MongoDB (TokenChats, the account) and ClickHouse (usage_events, session_summaries) against the SDK's summary. */
  async function assertStoresAgree(
    result: SessionResult,
    accountDoc: () => Promise<Record<string, unknown> | null>,
  ) {
    const chat = await eventually("the chat's TokenChats summary", async () => {
      const doc = await mongo
        .db(config.AGENTMETER_WORKFLOW_DB)
        .collection(COLLECTIONS.workflow.tokenChats)
        .findOne({ chat_id: result.chat_id });
      return doc ?? undefined;
    });
    assert.equal(chat.session_summary.total_tokens, result.session_summary.total_tokens);
    assert.equal(BigInt(chat.session_summary.total_cost_micros), result.session_summary.total_cost_micros);
    assert.deepEqual(chat.session_summary.agents_used, result.session_summary.agents_used);
    assert.equal(
      chat.session_summary.session_duration_seconds,
      result.session_summary.session_duration_seconds,
    );
    assert.deepEqual(chat.agent_performance, result.agent_performance);
    // Written behind, collection by collection (accounts after the projections): wait for the figures.
    const account = await eventually("the account's totals", async () => {
      const doc = await accountDoc();
      return doc?.tokens_used === result.session_summary.total_tokens ? doc : undefined;
    });
    assert.equal(account?.tokens_used, result.session_summary.total_tokens);
    assert.equal(BigInt(account?.cost_micros as bigint), result.session_summary.total_cost_micros);

    const row = await eventually("the chat's rows in ClickHouse", async () => {
      const answer = await clickhouse.query({
        query: `SELECT
                  (SELECT sum(tokens_used) FROM ${config.CLICKHOUSE_DATABASE}.usage_events FINAL WHERE chat_id = {chat:String}) AS tokens,
                  (SELECT toString(sum(cost_micros)) FROM ${config.CLICKHOUSE_DATABASE}.usage_events FINAL WHERE chat_id = {chat:String}) AS cost,
                  (SELECT count() FROM ${config.CLICKHOUSE_DATABASE}.session_summaries FINAL WHERE chat_id = {chat:String}) AS summaries,
                  (SELECT any(total_tokens) FROM ${config.CLICKHOUSE_DATABASE}.session_summaries FINAL WHERE chat_id = {chat:String}) AS summary_tokens,
                  (SELECT toString(any(total_cost_micros)) FROM ${config.CLICKHOUSE_DATABASE}.session_summaries FINAL WHERE chat_id = {chat:String}) AS summary_cost`,
        query_params: { chat: result.chat_id },
        format: "JSONEachRow",
      });
      const [first] = await answer.json<{
        tokens: string;
        cost: string;
        summaries: string;
        summary_tokens: string;
        summary_cost: string;
      }>();
      return first !== undefined && Number(first.summaries) === 1 ? first : undefined;
    });
    assert.equal(Number(row.tokens), result.session_summary.total_tokens);
    assert.equal(BigInt(row.cost), result.session_summary.total_cost_micros);
    assert.equal(Number(row.summary_tokens), result.session_summary.total_tokens);
    assert.equal(BigInt(row.summary_cost), result.session_summary.total_cost_micros);
  }

  it("app level: an end user's chat runs out of trial, shows in PausedChats, resumes after a top-up and finalizes", async () => {
    // Given an end user of an app with a 3,000-token trial
    const manager = meter.tokenManager({
      enterprise_id: "sdk-app",
      mozaiks_user_id: "sdk-creator",
      platform_user_id: "enduser-1",
      workflow_name: "chat",
      model: "gpt-4o-mini",
    });
    const start = await manager.initializeBudget();
    assert.equal(start.can_continue, true);

    // When the agent loop runs until canContinue says no
    const turns = await runUntilExhausted(manager, (usage) => manager.trackUsage(usage));
    assert.equal(turns, 4, "3,000 tokens last 4 turns of 850");

    // Then the reason is the exhausted trial and the chat shows as paused in PausedChats
    const exhausted = await manager.budgetStatus();
    assert.equal(exhausted.can_continue, false);
    assert.equal(exhausted.pause_reason, "trial_exhausted");
    assert.equal(exhausted.chat?.paused, true);
    assert.equal(exhausted.source, "view");
    assert.equal(exhausted.staleness.caught_up, true);
    assert.equal(await manager.resumeChat(), false, "no resume without tokens");
    await manager.handleNoTokens();
    const appDb = config.AGENTMETER_APP_DB_PREFIX + "sdk-app";
    const paused = await eventually("the chat in PausedChats", async () => {
      const doc = await pauseDoc(appDb, COLLECTIONS.app.pausedChats, manager.chat_id);
      return doc?.paused === true ? doc : undefined;
    });
    assert.equal(paused.pause_reason, "trial_exhausted");
    assert.equal(paused.can_resume, false);

    // When a top-up arrives, canContinue turns true and the chat resumes
    await manager.topUp(10_000, 200_000);
    await eventually("canContinue after the top-up", async () =>
      (await manager.canContinue()) ? true : undefined,
    );
    assert.equal(await manager.canResumeChat(), true);
    assert.equal(await manager.resumeChat(), true);
    await manager.syncBudget();
    assert.equal((await manager.budgetStatus()).chat?.paused, false);
    await manager.trackUsage({ WriterAgent: { prompt_tokens: 200, completion_tokens: 100 } });

    // Then finalize returns the summary and the comparison, and the stores agree with it
    const result = await manager.finalizeSession();
    assert.equal(result.session_summary.total_tokens, 4 * 850 + 300);
    assert.deepEqual(result.session_summary.agents_used, ["PlannerAgent", "WriterAgent"]);
    assert.equal(result.agent_performance.PlannerAgent?.message_count, 4);
    assert.equal(result.agent_performance.PlannerAgent?.total_response_time_ms, 1_000);
    assert.equal(result.cost_analysis.status, "no_baseline");
    assert.ok(result.session_summary.session_duration_seconds > 0);
    await assertStoresAgree(result, () =>
      mongo
        .db(appDb)
        .collection(COLLECTIONS.app.users)
        .findOne({ _id: "enduser-1" as never }),
    );
    // PausedChats is written beside TokenChats, not with it: wait for the finalize there too.
    const finalState = await eventually("the chat finalized in PausedChats", async () => {
      const doc = await pauseDoc(appDb, COLLECTIONS.app.pausedChats, manager.chat_id);
      return doc?.status === "finalized" ? doc : undefined;
    });
    assert.equal(finalState?.status, "finalized");
  });

  it("platform level: a creator's build runs out of allowance, shows in ChatPauses, resumes after a top-up and finalizes", async () => {
    const manager = meter.platformTokenManager({
      enterprise_id: "sdk-app",
      mozaiks_user_id: "sdk-creator",
      workflow_name: "Generator",
    });
    await manager.initializePlatformBudget();
    const turns = await runUntilExhausted(manager, (usage) => manager.trackPlatformUsage(usage));
    assert.equal(turns, 6, "5,000 tokens last 6 turns of 850");
    const exhausted = await manager.budgetStatus();
    assert.equal(exhausted.pause_reason, "allowance_exhausted");
    await manager.handleNoTokens();
    const paused = await eventually("the chat in ChatPauses", async () => {
      const doc = await pauseDoc(
        config.AGENTMETER_WORKFLOW_DB,
        COLLECTIONS.workflow.chatPauses,
        manager.chat_id,
      );
      return doc?.paused === true ? doc : undefined;
    });
    assert.equal(paused.pause_reason, "allowance_exhausted");

    await manager.topUp(20_000, 400_000);
    await eventually("canContinue after the top-up", async () =>
      (await manager.canContinue()) ? true : undefined,
    );
    assert.equal(await manager.resumeChat(), true);
    await manager.trackPlatformUsage({ CoderAgent: { prompt_tokens: 1_000, completion_tokens: 1_000 } });
    const result = await manager.finalizePlatformSession();
    assert.equal(result.session_summary.total_tokens, 6 * 850 + 2_000);
    assert.equal(result.level, "platform");
    await assertStoresAgree(result, () =>
      mongo
        .db(config.AGENTMETER_PLATFORM_DB)
        .collection(COLLECTIONS.platform.users)
        .findOne({ _id: "sdk-creator" as never }),
    );

    // And the next session of the workflow is compared with this one's figures from ClickHouse
    const next = meter.platformTokenManager({
      enterprise_id: "sdk-app",
      mozaiks_user_id: "sdk-creator",
      workflow_name: "Generator",
    });
    await next.initializePlatformBudget();
    await next.trackPlatformUsage({ CoderAgent: { prompt_tokens: 10_000, completion_tokens: 10_000 } });
    const analysis = await next.checkWorkflowCostThresholds({ minSessions: 1 });
    assert.equal(analysis.session_count, 1);
    assert.equal(analysis.average_cost_micros, result.session_summary.total_cost_micros);
    assert.equal(analysis.status, "exceeded");
  });
});
