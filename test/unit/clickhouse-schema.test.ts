import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { MIGRATIONS } from "../../sinks/clickhouse/migrations.ts";
import { sessionSummaryRow } from "../../sinks/clickhouse/session-summaries.ts";

const statements = MIGRATIONS.flatMap((migration) => migration.statements("`db`"));

describe("ClickHouse schema", () => {
  test("Given the migrations, Then versions are unique and ascending", () => {
    const versions = MIGRATIONS.map((migration) => migration.version);
    assert.deepEqual(
      versions,
      [...new Set(versions)].sort((a, b) => a - b),
    );
  });

  test("Given every DDL statement, Then it is idempotent (IF NOT EXISTS), so a half-applied version can run again", () => {
    for (const statement of statements) {
      if (statement.startsWith("INSERT")) {
        assert.match(
          statement,
          /WHERE \(SELECT count\(\) FROM `db`\.\w+\) = 0/,
          "a backfill only fills an empty table",
        );
      } else if (/^ALTER TABLE \S+_mv MODIFY QUERY SELECT\s/.test(statement)) {
      } else assert.match(statement, /IF NOT EXISTS/, statement.slice(0, 80));
    }
  });

  test("Given every materialized view, Then its target keeps a deduplication window (else a retried insert counts twice)", () => {
    const targets = statements.flatMap((s) => [
      ...s.matchAll(/MATERIALIZED VIEW IF NOT EXISTS \S+ TO `db`\.(\w+)/g),
    ]);
    assert.ok(targets.length >= 4);
    for (const [, target] of targets) {
      const ddl = statements.find((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS \`db\`.${target} `));
      assert.ok(ddl, `no table for ${target}`);
      assert.match(ddl, /non_replicated_deduplication_window = \d+/, target);
    }
  });

  test("Given a money column, Then it is Int64 micros, never Float", () => {
    for (const statement of statements) {
      for (const [, column, type] of statement.matchAll(/(\w*(?:micros|cost)\w*) ([A-Za-z]+)/g)) {
        if (/^(SimpleAggregateFunction|Int64)$/.test(type!)) continue;
        if (/Float|Decimal/.test(type!)) assert.fail(`${column} is ${type}`);
      }
    }
  });

  test("Given a session summary, Then its row has the agents as parallel arrays sorted by name and money as strings", () => {
    const row = sessionSummaryRow({
      kind: "session_summary",
      schema_version: 1,
      record_id: "r-end",
      account_key: "app:app-000:u1",
      level: "app_usage",
      enterprise_id: "app-000",
      mozaiks_user_id: "creator-000",
      platform_user_id: "u1",
      occurred_at: "2026-11-01T09:05:00.000Z",
      session_id: "s1",
      chat_id: "c1",
      workflow_name: "chat",
      started_at: "2026-11-01T09:00:00.000Z",
      ended_at: "2026-11-01T09:05:00.000Z",
      session_duration_seconds: 300,
      total_tokens: 30,
      total_cost_micros: 12_345_678_901_234_567n,
      billed_micros: 0n,
      agents_used: ["B", "A"],
      agent_performance: {
        B: {
          prompt_tokens: 1,
          completion_tokens: 2,
          total_response_time_ms: 10,
          message_count: 1,
          avg_response_time_ms: 10,
        },
        A: {
          prompt_tokens: 3,
          completion_tokens: 4,
          cached_prompt_tokens: 9,
          total_response_time_ms: 0,
          message_count: 0,
          avg_response_time_ms: null,
        },
      },
    });
    assert.deepEqual(row.agent_names, ["A", "B"]);
    assert.deepEqual(row.agent_prompt_tokens, [3, 1]);
    // A class an agent did not report is written as zero, beside the agents that did
    assert.deepEqual(row.agent_cached_prompt_tokens, [9, 0]);
    assert.deepEqual(row.agent_reasoning_tokens, [0, 0]);
    assert.deepEqual(row.agent_avg_response_time_ms, [null, 10]);
    assert.equal(row.total_cost_micros, "12345678901234567");
  });
});
