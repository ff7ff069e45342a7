import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { AgentmeterAdmin } from "../../sdk/admin.ts";
import { Agentmeter, type RecordInput } from "../../sdk/index.ts";
import { ledgerFigures } from "../support/expected.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";

const billing = parseBillingConfig({
  app_trial_tokens: { default: 3_000 },
  platform_allowance_tokens: 20_000,
});

describe("SDK mock mode gives the same figures as the real pipeline for the same records", () => {
  const records = [
    ...generateWorkload({ seed: 11, records: 500, apps: 3, usersPerApp: 6, runId: "sdkmock" }),
  ];
  let pipeline: TestPipeline;
  let real: Agentmeter;
  let mock: Agentmeter;

  before(async () => {
    pipeline = await TestPipeline.create({ billing });
    await pipeline.startProcessor();
    const config = pipeline.config;
    real = await Agentmeter.connect({ config, billing });
    mock = await Agentmeter.connect({ config, billing, mock: true });
    // Given the same records sent through both
    await Promise.all(records.map((record) => real.send(record as RecordInput)));
    for (const record of records) await mock.send(record as RecordInput);
  });

  after(async () => {
    await real?.close();
    await mock?.close();
    await pipeline?.close();
  });

  it("then every account's balances, money and budget state are equal", async () => {
    const accounts = mock.mock!.accounts();
    assert.ok(accounts.length > 10);
    assert.ok(
      accounts.some((account) => account.chats && Object.values(account.chats).some((chat) => chat.paused)) ||
        mock.mock!.outputs.some((output) => output.kind === "budget_event" && output.event === "exhausted"),
      "the workload should exhaust some trials",
    );
    const stores = new AgentmeterAdmin(pipeline.config);
    try {
      for (const expected of accounts) {
        const ids = {
          level: expected.level,
          enterprise_id: expected.enterprise_id ?? "",
          mozaiks_user_id: expected.mozaiks_user_id,
          platform_user_id: expected.platform_user_id ?? undefined,
        };
        // The view's budget state and the MongoDB document, once the processor got there.
        const viewState = await real.waitForBudget(ids, (state) => state.as_of === expected.last_event_at);
        assert.deepEqual(
          viewState,
          (await mock.budget(ids)).state,
          `budget state of ${expected.account_key}`,
        );
        const doc = await eventually(`account ${expected.account_key} in MongoDB`, async () => {
          const found = await stores.account(ids);
          return found !== null && found.last_event_at === expected.last_event_at ? found : undefined;
        });
        assert.deepEqual(ledgerFigures(doc), ledgerFigures(expected), `figures of ${expected.account_key}`);
      }
    } finally {
      await stores.close();
    }
  });

  it("then the workflow averages of mock mode equal ClickHouse's", async () => {
    const summaries = mock.mock!.outputs.filter((output) => output.kind === "session_summary");
    assert.ok(summaries.length > 0, "the workload finalizes sessions");
    const first = summaries[0]!;
    const expected = mock.mock!.workflowAverages(first.workflow_name, first.enterprise_id)!;
    const actual = await eventually("ClickHouse workflow averages", async () => {
      const found = await real.workflowAverages(first.workflow_name, first.enterprise_id);
      return found !== null && found.session_count === expected.session_count ? found : undefined;
    });
    assert.equal(actual.total_cost_micros, expected.total_cost_micros);
    assert.equal(actual.total_tokens, expected.total_tokens);
    assert.ok(Math.abs(actual.avg_session_duration_seconds - expected.avg_session_duration_seconds) < 1e-6);
    assert.ok(Math.abs(actual.avg_agents_per_session - expected.avg_agents_per_session) < 1e-9);
  });
});
