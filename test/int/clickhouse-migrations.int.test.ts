import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import type { InputRecordJson, UsageOutcome } from "../../schemas/index.ts";

type AgentUsage = Extract<InputRecordJson, { type: "usage" }>["agent_usage"];

import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { applyMigrations } from "../../sinks/clickhouse/migrations.ts";
import { usageEventRow } from "../../sinks/clickhouse/usage-events.ts";
import { isolatedConfig } from "../support/pipeline.ts";
import { ofKind, run, usage } from "../unit/builders.ts";

/** The row a processor of version 7 wrote: the same as today's, without the token class columns. */
function version7Row(outcome: UsageOutcome, offset: number): Record<string, unknown> {
  const row = usageEventRow({ position: { topic: "t", partition: 0, offset: String(offset) }, outcome });
  for (const column of Object.keys(row)) {
    if (/cached_prompt|reasoning|audio/.test(column)) delete row[column];
  }
  return row;
}

function outcomeOf(recordId: string, agents: AgentUsage): UsageOutcome {
  const record = usage({ record_id: recordId, agent_usage: agents, occurred_at: "2026-11-03T10:00:00Z" });
  const [outcome] = ofKind(run([record]).outputs, "usage_outcome");
  assert.ok(outcome);
  return outcome;
}

describe("ClickHouse migrations: a database of version 7 upgrades to the token classes", () => {
  let clickhouse: ClickHouseClient;
  let database: string;
  let db: string;

  async function rows<T>(query: string): Promise<T[]> {
    const result = await clickhouse.query({ query, format: "JSONEachRow" });
    return result.json<T>();
  }

  before(async () => {
    const config = await isolatedConfig();
    clickhouse = clickHouseFor(config);
    database = config.CLICKHOUSE_DATABASE;
    db = quoteIdent(database);
    // Given a database built by the migrations up to version 7, holding a row written then
    assert.deepEqual(await applyMigrations(clickhouse, database, 7), [1, 2, 3, 4, 5, 6, 7]);
    const old = outcomeOf("old-1", { Planner: { prompt_tokens: 1_000, completion_tokens: 200 } });
    await clickhouse.insert({
      table: `${db}.usage_events`,
      values: [version7Row(old, 1)],
      format: "JSONEachRow",
    });
  });

  after(async () => {
    await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    await clickhouse?.close();
  });

  it("applies version 8 only, once, and keeps the old row with zero classes", async () => {
    assert.deepEqual(await applyMigrations(clickhouse, database), [8]);
    assert.deepEqual(await applyMigrations(clickhouse, database), [], "a second start applies nothing");
    const [old] = await rows<Record<string, unknown>>(
      `SELECT prompt_tokens, cached_prompt_tokens, reasoning_tokens, agent_cached_prompt_tokens FROM ${db}.usage_events FINAL`,
    );
    assert.deepEqual(old, {
      prompt_tokens: "1000",
      cached_prompt_tokens: "0",
      reasoning_tokens: "0",
      agent_cached_prompt_tokens: [],
    });
  });

  it("after the upgrade, new rows carry their classes into every rollup beside the old rows", async () => {
    // When a processor of version 8 writes a record whose agents report classes
    const fresh = outcomeOf("new-1", {
      Planner: {
        prompt_tokens: 500,
        completion_tokens: 100,
        cached_prompt_tokens: 300,
        reasoning_tokens: 40,
      },
      Writer: { prompt_tokens: 50, completion_tokens: 10, cached_prompt_tokens: 7 },
    });
    const row = usageEventRow({ position: { topic: "t", partition: 0, offset: "2" }, outcome: fresh });
    await clickhouse.insert({ table: `${db}.usage_events`, values: [row], format: "JSONEachRow" });
    // Then the usage rollups count both rows and the new one's classes
    for (const table of ["usage_by_minute", "usage_by_hour"]) {
      const [sums] = await rows<Record<string, string>>(
        `SELECT sum(records) AS records, sum(prompt_tokens) AS prompt, sum(cached_prompt_tokens) AS cached, sum(reasoning_tokens) AS reasoning FROM ${db}.${table}`,
      );
      assert.deepEqual(sums, { records: "2", prompt: "1550", cached: "307", reasoning: "40" }, table);
    }
    // And the agent rollups join the old row's empty class arrays as zeros
    for (const table of ["agent_usage_by_minute", "agent_usage_by_hour"]) {
      const perAgent = await rows<Record<string, string>>(
        `SELECT agent_name, sum(calls) AS calls, sum(prompt_tokens) AS prompt, sum(cached_prompt_tokens) AS cached, sum(reasoning_tokens) AS reasoning
         FROM ${db}.${table} GROUP BY agent_name ORDER BY agent_name`,
      );
      assert.deepEqual(
        perAgent,
        [
          { agent_name: "Planner", calls: "2", prompt: "1500", cached: "300", reasoning: "40" },
          { agent_name: "Writer", calls: "1", prompt: "50", cached: "7", reasoning: "0" },
        ],
        table,
      );
    }
  });
});
