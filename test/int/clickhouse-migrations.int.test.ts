import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import type { InputRecordJson, UsageOutcome } from "../../schemas/index.ts";

type AgentUsage = Extract<InputRecordJson, { type: "usage" }>["agent_usage"];

import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { applyMigrations } from "../../sinks/clickhouse/migrations.ts";
import { sessionSummaryRow } from "../../sinks/clickhouse/session-summaries.ts";
import { usageEventRow } from "../../sinks/clickhouse/usage-events.ts";
import { isolatedConfig } from "../support/pipeline.ts";
import { at, ofKind, run, session, usage } from "../unit/builders.ts";

/** The row a processor of version 7 wrote: the same as today's, without the token class columns. */
function version7Row(outcome: UsageOutcome, offset: number): Record<string, unknown> {
  const row = usageEventRow({ position: { topic: "t", partition: 0, offset: String(offset) }, outcome });
  for (const column of Object.keys(row)) {
    if (/cached_prompt|reasoning|audio/.test(column)) delete row[column];
  }
  return row;
}

/** A finalized chat's summary row, without the per-agent class columns when written by version 7 or 8. */
function summaryRow(chatId: string, agents: AgentUsage, version: number): Record<string, unknown> {
  const { outputs } = run([
    session({ record_id: `${chatId}-start`, chat_id: chatId, event: "start", occurred_at: at(0) }),
    usage({ record_id: `${chatId}-u`, chat_id: chatId, agent_usage: agents, occurred_at: at(1) }),
    session({ record_id: `${chatId}-end`, chat_id: chatId, event: "finalize", occurred_at: at(2) }),
  ]);
  const [summary] = ofKind(outputs, "session_summary");
  assert.ok(summary);
  const row = sessionSummaryRow(summary);
  if (version < 9) {
    for (const column of Object.keys(row)) {
      if (/cached_prompt|reasoning|audio/.test(column)) delete row[column];
    }
  }
  return row;
}

function outcomeOf(recordId: string, agents: AgentUsage): UsageOutcome {
  const record = usage({ record_id: recordId, agent_usage: agents, occurred_at: "2026-11-03T10:00:00Z" });
  const [outcome] = ofKind(run([record]).outputs, "usage_outcome");
  assert.ok(outcome);
  return outcome;
}

describe("ClickHouse migrations: a database of version 7 upgrades to the token classes (usage events, rollups, session summaries) and to rollups fed beside usage_events, marking their source partitions", () => {
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
    await clickhouse.insert({
      table: `${db}.session_summaries`,
      values: [summaryRow("old-chat", { Planner: { prompt_tokens: 1_000, completion_tokens: 200 } }, 7)],
      format: "JSONEachRow",
    });
  });

  after(async () => {
    await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    await clickhouse?.close();
  });

  it("applies versions 8 to 10 only, once, and keeps the old rows with zero classes", async () => {
    assert.deepEqual(await applyMigrations(clickhouse, database), [8, 9, 10]);
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
    const [oldSummary] = await rows<Record<string, unknown>>(
      `SELECT agent_names, agent_prompt_tokens, agent_cached_prompt_tokens, agent_audio_tokens FROM ${db}.session_summaries FINAL`,
    );
    assert.deepEqual(oldSummary, {
      agent_names: ["Planner"],
      agent_prompt_tokens: ["1000"],
      agent_cached_prompt_tokens: [],
      agent_audio_tokens: [],
    });
  });

  it("rebuilds each rollup from usage_events once, the old row counted once and marked with its source partition and offset", async () => {
    for (const table of ["usage_by_minute", "usage_by_hour"]) {
      const marked = await rows<Record<string, string>>(
        `SELECT src_topic, toString(src_partition) AS src_partition, toString(max(src_offset)) AS mark, toString(sum(records)) AS records
         FROM ${db}.${table} GROUP BY src_topic, src_partition`,
      );
      assert.deepEqual(marked, [{ src_topic: "t", src_partition: "0", mark: "1", records: "1" }], table);
    }
    for (const table of ["agent_usage_by_minute", "agent_usage_by_hour"]) {
      const marked = await rows<Record<string, string>>(
        `SELECT src_topic, toString(max(src_offset)) AS mark, toString(sum(calls)) AS calls FROM ${db}.${table} GROUP BY src_topic`,
      );
      assert.deepEqual(marked, [{ src_topic: "t", mark: "1", calls: "1" }], table);
    }
  });

  it("after the upgrade, a session summary keeps each agent's classes beside the old summary", async () => {
    await clickhouse.insert({
      table: `${db}.session_summaries`,
      values: [
        summaryRow(
          "new-chat",
          {
            Planner: {
              prompt_tokens: 10,
              completion_tokens: 1,
              cached_prompt_tokens: 30,
              reasoning_tokens: 4,
            },
            Writer: { prompt_tokens: 5, completion_tokens: 1 },
          },
          9,
        ),
      ],
      format: "JSONEachRow",
    });
    const summaries = await rows<Record<string, unknown>>(
      `SELECT chat_id, agent_names, agent_cached_prompt_tokens, agent_reasoning_tokens
       FROM ${db}.session_summaries FINAL ORDER BY chat_id`,
    );
    assert.deepEqual(summaries, [
      {
        chat_id: "new-chat",
        agent_names: ["Planner", "Writer"],
        agent_cached_prompt_tokens: ["30", "0"],
        agent_reasoning_tokens: ["4", "0"],
      },
      {
        chat_id: "old-chat",
        agent_names: ["Planner"],
        agent_cached_prompt_tokens: [],
        agent_reasoning_tokens: [],
      },
    ]);
    // The views over the table still read both rows
    const [averages] = await rows<{ session_count: string }>(
      `SELECT sum(session_count) AS session_count FROM ${db}.workflow_averages`,
    );
    assert.equal(averages?.session_count, "2");
  });

  it("after the upgrade, new rows carry their classes into every rollup beside the old rows", async () => {
    // When a processor of version 10 writes a record whose agents report classes (into usage_ingest,
    // which feeds usage_events and every rollup)
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
    await clickhouse.insert({ table: `${db}.usage_ingest`, values: [row], format: "JSONEachRow" });
    assert.equal((await rows(`SELECT record_id FROM ${db}.usage_events FINAL`)).length, 2);
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
