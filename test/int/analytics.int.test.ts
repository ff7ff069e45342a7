import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { checkWorkflowCostThresholds } from "../../pipeline/core/cost-thresholds.ts";
import { loadBillingConfig } from "../../pipeline/runtime/billing-config.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import type { InputRecordJson, SessionSummary, UsageOutcome } from "../../schemas/index.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { workflowAverages } from "../../sinks/clickhouse/workflow-averages.ts";
import { expectedRun } from "../support/expected.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";

/** The ```sql blocks of docs/analytics.md that start with `-- name: x`, in order. */
function documentedQueries(): { name: string; sql: string }[] {
  const markdown = readFileSync(new URL("../../docs/analytics.md", import.meta.url), "utf8");
  return [...markdown.matchAll(/```sql\n-- name: (\S+)\n([\s\S]*?)```/g)].map((match) => ({
    name: match[1]!,
    sql: match[2]!,
  }));
}

type Row = Record<string, unknown>;

function group<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const item of items) {
    const k = key(item);
    const list = groups.get(k);
    if (list === undefined) groups.set(k, [item]);
    else list.push(item);
  }
  return groups;
}

const sum = <T>(items: readonly T[], value: (item: T) => number | bigint): bigint =>
  items.reduce((total, item) => total + BigInt(value(item)), 0n);

/** ClickHouse's `quantile` over fewer values than its reservoir: linear interpolation at level x (n - 1). */
function quantile(values: number[], level: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const position = level * (sorted.length - 1);
  const low = Math.floor(position);
  const high = Math.min(low + 1, sorted.length - 1);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (position - low);
}

function near(actual: unknown, expected: number, tolerance: number, what: string): void {
  assert.ok(
    Math.abs(Number(actual) - expected) <= tolerance,
    `${what}: got ${String(actual)}, expected ${expected} (+-${tolerance})`,
  );
}

/** ClickHouse orders strings by bytes, not by locale. */
const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
const day = (iso: string) => iso.slice(0, 10);
const month = (iso: string) => `${iso.slice(0, 7)}-01`;

/**
 * Every third usage record reports cached prompt and reasoning tokens for its agents (the simulate
 * workload reports none), so the class columns and rollups carry figures the check can tell from zero.
 */
function withTokenClasses(record: InputRecordJson, index: number): InputRecordJson {
  if (record.type !== "usage" || index % 3 !== 0) return record;
  const agents = Object.fromEntries(
    Object.entries(record.agent_usage).map(([name, agent]) => [
      name,
      {
        ...agent,
        cached_prompt_tokens: Math.floor(agent.prompt_tokens / 4) + 1,
        reasoning_tokens: Math.floor(agent.completion_tokens / 3),
      },
    ]),
  );
  return { ...record, agent_usage: agents };
}

describe("analytics: every query in docs/analytics.md runs as written and matches the billing core", () => {
  // 2000 records 45 s apart: about 25 hours, so the day, hour and minute buckets all have several values.
  const records = [
    ...generateWorkload({
      seed: 11,
      records: 2_000,
      apps: 4,
      usersPerApp: 10,
      stepMs: 45_000,
      runId: "an",
      startAt: "2026-11-01T09:00:00.000Z",
    }),
  ].map(withTokenClasses);
  // The defaults, as the processor's: this test's configuration names no billing file.
  const { outputs } = expectedRun(records, loadBillingConfig({}));
  const usage = outputs.filter((output): output is UsageOutcome => output.kind === "usage_outcome");
  const app = usage.filter((outcome) => outcome.level === "app_usage");
  const summaries = outputs.filter((output): output is SessionSummary => output.kind === "session_summary");
  const queries = documentedQueries();
  let pipeline: TestPipeline;
  let clickhouse: ClickHouseClient;
  let db: string;

  async function run(name: string): Promise<Row[]> {
    const query = queries.find((item) => item.name === name);
    assert.ok(query, `docs/analytics.md has no query named ${name}`);
    const result = await clickhouse.query({
      query: query.sql.replace(/\bagentmeter\./g, `${db}.`),
      format: "JSONEachRow",
    });
    return result.json<Row>();
  }

  before(async () => {
    pipeline = await TestPipeline.create();
    db = pipeline.config.CLICKHOUSE_DATABASE;
    await pipeline.startProcessor();
    // Given a known workload through the real processor
    await pipeline.produce(records);
    clickhouse = clickHouseFor(pipeline.config);
    await eventually(
      "every usage row and session summary in ClickHouse",
      async () => {
        const result = await clickhouse.query({
          query: `SELECT (SELECT count() FROM ${db}.usage_events FINAL) AS usage,
                         (SELECT count() FROM ${db}.session_summaries FINAL) AS summaries`,
          format: "JSONEachRow",
        });
        const [row] = await result.json<{ usage: string; summaries: string }>();
        return Number(row?.usage) === usage.length && Number(row?.summaries) === summaries.length
          ? true
          : undefined;
      },
      120_000,
    );
    // The local engine (chdb 26.7) briefly shows a MergeTree table with no active part while a merge
    // swaps parts in (seen: usage_by_hour with 0 parts, then 1 part with every row 100 ms later). Merges
    // are stopped in this test's database, then the rollups are awaited whole, so that every documented
    // query reads settled tables.
    const tables = await clickhouse.query({
      query: `SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'`,
      query_params: { db },
      format: "JSONEachRow",
    });
    for (const { name } of await tables.json<{ name: string }>())
      await clickhouse.command({ query: `SYSTEM STOP MERGES ${db}.\`${name}\`` });
    const calls = usage.reduce((total, outcome) => total + Object.keys(outcome.agents).length, 0);
    await eventually("every rollup whole", async () => {
      const result = await clickhouse.query({
        query: `SELECT (SELECT sum(records) FROM ${db}.usage_by_minute) AS minute,
                       (SELECT sum(records) FROM ${db}.usage_by_hour) AS hour,
                       (SELECT sum(calls) FROM ${db}.agent_usage_by_minute) AS agent_minute,
                       (SELECT sum(calls) FROM ${db}.agent_usage_by_hour) AS agent_hour`,
        format: "JSONEachRow",
      });
      const [row] = await result.json<Record<string, string>>();
      return Number(row?.minute) === usage.length &&
        Number(row?.hour) === usage.length &&
        Number(row?.agent_minute) === calls &&
        Number(row?.agent_hour) === calls
        ? true
        : undefined;
    });
  });

  after(async () => {
    await pipeline?.close();
    await clickhouse?.close();
  });

  it("the workload exercises what the queries look at", () => {
    assert.ok(queries.length >= 10, `only ${queries.length} documented queries`);
    assert.ok(summaries.length > 50, `only ${summaries.length} finished sessions`);
    assert.ok(app.some((outcome) => outcome.trial_tokens_used > 0));
    assert.ok(app.some((outcome) => outcome.billed_micros > 0n));
    assert.ok(usage.some((outcome) => outcome.level === "platform"));
  });

  const checks: Record<string, () => Promise<void>> = {
    async top_apps_by_billed() {
      const expected = [...group(app, (outcome) => outcome.enterprise_id)]
        .map(([enterprise_id, items]) => ({
          enterprise_id,
          records: String(items.length),
          billed: String(sum(items, (item) => item.billed_micros)),
          creator_share: String(sum(items, (item) => item.creator_share_micros)),
          platform_fee: String(sum(items, (item) => item.platform_fee_micros)),
        }))
        .sort((a, b) => Number(BigInt(b.billed) - BigInt(a.billed)) || cmp(a.enterprise_id, b.enterprise_id))
        .slice(0, 10);
      const rows = await run("top_apps_by_billed");
      assert.deepEqual(
        rows.map(({ billed_usd: _, ...row }) => row),
        expected,
      );
      for (const row of rows) assert.equal(Number(row.billed_usd), Number(row.billed) / 1e6);
    },

    async top_spenders() {
      const expected = [...group(app, (outcome) => `${outcome.enterprise_id} ${outcome.platform_user_id}`)]
        .map(([, items]) => ({
          enterprise_id: items[0]!.enterprise_id,
          platform_user_id: items[0]!.platform_user_id,
          records: String(items.length),
          tokens: String(sum(items, (item) => item.tokens_used)),
          billed: String(sum(items, (item) => item.billed_micros)),
        }))
        .sort(
          (a, b) =>
            Number(BigInt(b.billed) - BigInt(a.billed)) ||
            cmp(a.enterprise_id, b.enterprise_id) ||
            cmp(a.platform_user_id!, b.platform_user_id!),
        )
        .slice(0, 10);
      const rows = await run("top_spenders");
      assert.deepEqual(
        rows.map(({ billed_usd: _, ...row }) => row),
        expected,
      );
    },

    async cost_per_workflow_per_day() {
      const expected = [...group(usage, (outcome) => `${day(outcome.occurred_at)} ${outcome.workflow_name}`)]
        .map(([, items]) => ({
          day: day(items[0]!.occurred_at),
          workflow_name: items[0]!.workflow_name,
          records: String(items.length),
          tokens: String(sum(items, (item) => item.tokens_used)),
          cost: String(sum(items, (item) => item.cost_micros)),
        }))
        .sort((a, b) => cmp(a.day, b.day) || cmp(a.workflow_name, b.workflow_name));
      const rows = await run("cost_per_workflow_per_day");
      assert.ok(new Set(expected.map((row) => row.day)).size >= 2, "the workload spans two days");
      assert.deepEqual(
        rows.map(({ cost_usd: _, ...row }) => row),
        expected,
      );
    },

    async token_classes_by_model() {
      const calls = usage.flatMap((outcome) =>
        Object.values(outcome.agents).map((agent) => ({ day: day(outcome.occurred_at), ...agent })),
      );
      const expected = [...group(calls, (call) => `${call.day} ${call.model}`)]
        .map(([, items]) => ({
          day: items[0]!.day,
          agent_model: items[0]!.model,
          calls: String(items.length),
          prompt: String(sum(items, (item) => item.prompt_tokens)),
          cached_prompt: String(sum(items, (item) => item.cached_prompt_tokens ?? 0)),
          completion: String(sum(items, (item) => item.completion_tokens)),
          reasoning: String(sum(items, (item) => item.reasoning_tokens ?? 0)),
          audio: "0",
        }))
        .sort((a, b) => cmp(a.day, b.day) || cmp(a.agent_model, b.agent_model));
      assert.ok(expected.some((row) => Number(row.cached_prompt) > 0 && Number(row.reasoning) > 0));
      const rows = await run("token_classes_by_model");
      assert.deepEqual(
        rows.map(({ cache_hit_ratio: _, ...row }) => row),
        expected,
      );
      for (const row of rows) {
        const cached = Number(row.cached_prompt);
        near(row.cache_hit_ratio, cached / (Number(row.prompt) + cached), 0.00006, "cache hit ratio");
      }
    },

    async agent_p95_response_time() {
      const times = new Map<string, number[]>();
      for (const outcome of usage) {
        for (const [name, agent] of Object.entries(outcome.agents)) {
          const list = times.get(name) ?? [];
          if (agent.response_time_ms !== null) list.push(agent.response_time_ms);
          times.set(name, list);
        }
      }
      const rows = await run("agent_p95_response_time");
      assert.deepEqual(rows.map((row) => row.agent_name).sort(), [...times.keys()].sort());
      for (const row of rows) {
        const list = times.get(String(row.agent_name))!;
        assert.equal(Number(row.calls), list.length, `calls of ${String(row.agent_name)}`);
        near(
          row.avg_ms,
          list.reduce((a, b) => a + b, 0) / list.length,
          0.051,
          `avg of ${String(row.agent_name)}`,
        );
        near(row.p95_ms, quantile(list, 0.95), 0.051, `p95 of ${String(row.agent_name)}`);
      }
      const p95s = rows.map((row) => Number(row.p95_ms));
      assert.deepEqual(
        p95s,
        [...p95s].sort((a, b) => b - a),
        "ordered by p95, highest first",
      );
    },

    async trial_conversion() {
      const expected = [...group(app, (outcome) => outcome.enterprise_id)]
        .map(([enterprise_id, items]) => {
          const trial = new Set(items.filter((i) => i.trial_tokens_used > 0).map((i) => i.platform_user_id));
          const paying = new Set(items.filter((i) => i.paid_tokens_used > 0).map((i) => i.platform_user_id));
          return { enterprise_id, trial_users: trial.size, paying_users: paying.size };
        })
        .sort((a, b) => cmp(a.enterprise_id, b.enterprise_id));
      const rows = await run("trial_conversion");
      assert.deepEqual(
        rows.map((row) => ({
          enterprise_id: row.enterprise_id,
          trial_users: Number(row.trial_users),
          paying_users: Number(row.paying_users),
        })),
        expected,
      );
      for (const [index, row] of rows.entries()) {
        near(
          row.conversion,
          expected[index]!.paying_users / expected[index]!.trial_users,
          0.0006,
          "conversion",
        );
      }
    },

    async creator_earnings_by_month() {
      const expected = [
        ...group(app, (outcome) => `${month(outcome.occurred_at)} ${outcome.mozaiks_user_id}`),
      ]
        .map(([, items]) => ({
          month: month(items[0]!.occurred_at),
          creator: items[0]!.mozaiks_user_id,
          billed: String(sum(items, (item) => item.billed_micros)),
          earnings: String(sum(items, (item) => item.creator_share_micros)),
        }))
        .sort(
          (a, b) =>
            cmp(a.month, b.month) ||
            Number(BigInt(b.earnings) - BigInt(a.earnings)) ||
            cmp(a.creator, b.creator),
        );
      const rows = await run("creator_earnings_by_month");
      assert.deepEqual(
        rows.map(({ earnings_usd: _, ...row }) => row),
        expected,
      );
    },

    async platform_revenue_by_month() {
      const expected = [...group(usage, (outcome) => `${month(outcome.occurred_at)} ${outcome.level}`)]
        .map(([, items]) => ({
          month: month(items[0]!.occurred_at),
          level: items[0]!.level,
          tokens: String(sum(items, (item) => item.tokens_used)),
          trial_tokens: String(sum(items, (item) => item.trial_tokens_used)),
          billed: String(sum(items, (item) => item.billed_micros)),
          platform_fee: String(sum(items, (item) => item.platform_fee_micros)),
        }))
        .sort((a, b) => cmp(a.month, b.month) || cmp(a.level, b.level));
      assert.deepEqual(await run("platform_revenue_by_month"), expected);
    },

    async app_tokens_per_minute() {
      const start = Date.parse("2026-11-01T09:00:00Z");
      const expected = Array.from({ length: 180 }, (_, index) => {
        const from = start + index * 60_000;
        const items = usage.filter(
          (outcome) =>
            outcome.enterprise_id === "app-000" &&
            Date.parse(outcome.occurred_at) >= from &&
            Date.parse(outcome.occurred_at) < from + 60_000,
        );
        return {
          minute: new Date(from).toISOString().slice(0, 19).replace("T", " "),
          tokens: String(sum(items, (item) => item.tokens_used)),
          records: String(items.length),
        };
      });
      assert.ok(expected.some((row) => row.records === "0") && expected.some((row) => row.records !== "0"));
      assert.deepEqual(await run("app_tokens_per_minute"), expected);
    },

    async sessions_per_workflow_per_day() {
      const expected = [...group(app, (outcome) => `${day(outcome.occurred_at)} ${outcome.workflow_name}`)]
        .map(([, items]) => ({
          day: day(items[0]!.occurred_at),
          workflow_name: items[0]!.workflow_name,
          sessions: String(new Set(items.map((item) => item.session_id)).size),
          active_accounts: String(new Set(items.map((item) => item.account_key)).size),
          records: String(items.length),
        }))
        .sort((a, b) => cmp(a.day, b.day) || cmp(a.workflow_name, b.workflow_name));
      assert.deepEqual(await run("sessions_per_workflow_per_day"), expected);
    },

    async workflow_averages() {
      const groups = [...group(summaries, (s) => `${s.enterprise_id} ${s.workflow_name}`)].sort(([a], [b]) =>
        cmp(a, b),
      );
      const rows = await run("workflow_averages");
      assert.equal(rows.length, groups.length);
      for (const [index, [, items]] of groups.entries()) {
        const row = rows[index]!;
        const n = items.length;
        const what = `${items[0]!.enterprise_id}/${items[0]!.workflow_name}`;
        assert.equal(row.enterprise_id, items[0]!.enterprise_id);
        assert.equal(row.workflow_name, items[0]!.workflow_name);
        assert.equal(Number(row.session_count), n, what);
        const cost = sum(items, (item) => item.total_cost_micros) / BigInt(n);
        assert.equal(row.avg_cost_micros, String(cost), what);
        near(row.avg_cost_per_session, Number(cost) / 1e6, 1e-9, what);
        near(row.avg_duration_s, items.reduce((t, i) => t + i.session_duration_seconds, 0) / n, 0.051, what);
        near(row.avg_tokens, items.reduce((t, i) => t + i.total_tokens, 0) / n, 0.051, what);
        near(row.avg_agents, items.reduce((t, i) => t + i.agents_used.length, 0) / n, 0.0051, what);
        // The query function the SDK and a threshold check use reads the same view.
        const averages = await workflowAverages(
          clickhouse,
          db,
          items[0]!.workflow_name,
          items[0]!.enterprise_id,
        );
        assert.equal(averages?.session_count, n);
        assert.equal(
          averages?.total_cost_micros,
          sum(items, (item) => item.total_cost_micros),
        );
      }
    },

    async longest_sessions() {
      const expected = [...summaries]
        .sort((a, b) => b.session_duration_seconds - a.session_duration_seconds || cmp(a.chat_id, b.chat_id))
        .slice(0, 10);
      const rows = await run("longest_sessions");
      assert.deepEqual(
        rows.map((row) => row.chat_id),
        expected.map((s) => s.chat_id),
      );
      for (const [index, row] of rows.entries()) {
        const summary = expected[index]!;
        assert.equal(row.total_tokens, String(summary.total_tokens));
        assert.equal(row.total_cost_micros, String(summary.total_cost_micros));
        assert.deepEqual(row.agents_used, summary.agents_used);
        const performance = row.agent_performance as Record<string, Record<string, unknown>>;
        for (const [name, agent] of Object.entries(summary.agent_performance)) {
          assert.equal(performance[name]?.message_count, agent.message_count, `${summary.chat_id} ${name}`);
          near(performance[name]?.total_response_time_ms, agent.total_response_time_ms, 1e-6, name);
          near(performance[name]?.avg_response_time_ms, agent.avg_response_time_ms!, 1e-6, name);
        }
      }
    },

    async sessions_over_cost_threshold() {
      const byWorkflow = group(summaries, (s) => `${s.enterprise_id} ${s.workflow_name}`);
      const expected = summaries
        .filter((s) => {
          const items = byWorkflow.get(`${s.enterprise_id} ${s.workflow_name}`)!;
          return (
            checkWorkflowCostThresholds({
              currentCostMicros: s.total_cost_micros,
              currentTokens: s.total_tokens,
              minSessions: 1,
              averages: {
                enterprise_id: s.enterprise_id,
                workflow_name: s.workflow_name,
                session_count: items.length,
                total_cost_micros: sum(items, (item) => item.total_cost_micros),
                total_tokens: Number(sum(items, (item) => item.total_tokens)),
                avg_session_duration_seconds: 0,
                avg_agents_per_session: 0,
              },
            }).status === "exceeded"
          );
        })
        .map((s) => s.chat_id)
        .sort();
      assert.ok(expected.length > 0, "the workload has sessions over the threshold");
      const rows = await run("sessions_over_cost_threshold");
      assert.deepEqual(rows.map((row) => String(row.chat_id)).sort(), expected);
    },

    async agent_token_share() {
      const byAgent = new Map<string, { tokens: bigint; cost: bigint }>();
      for (const outcome of usage) {
        if (outcome.tokens_used === 0) continue;
        for (const [name, agent] of Object.entries(outcome.agents)) {
          const tokens = BigInt(agent.prompt_tokens + agent.completion_tokens);
          const totals = byAgent.get(name) ?? { tokens: 0n, cost: 0n };
          totals.tokens += tokens;
          totals.cost += (outcome.cost_micros * tokens) / BigInt(outcome.tokens_used);
          byAgent.set(name, totals);
        }
      }
      const expected = [...byAgent]
        .map(([agent_name, totals]) => ({
          agent_name,
          tokens: String(totals.tokens),
          attributed_cost_micros: String(totals.cost),
        }))
        .sort((a, b) => Number(BigInt(b.tokens) - BigInt(a.tokens)) || cmp(a.agent_name, b.agent_name));
      const rows = await run("agent_token_share");
      assert.deepEqual(
        rows.map(({ attributed_cost_usd: _, ...row }) => row),
        expected,
      );
    },

    async rollup_reconciliation() {
      assert.deepEqual(await run("rollup_reconciliation"), []);
    },

    async offset_reconciliation() {
      // A clean run: every offset of every partition was flushed, and nothing skipped without cause.
      assert.deepEqual(await run("offset_reconciliation"), []);
      // The query can fail: a flush on an untouched partition that skipped records as replays (the
      // position bug of issue 19) is reported.
      await clickhouse.insert({
        table: `${db}.partition_progress`,
        values: [
          {
            source: "lost.usage",
            partition: 1,
            first_offset: 0,
            last_offset: 2,
            consumed: 3,
            applied: 0,
            replayed_skipped: 3,
            dead_lettered: 0,
            duplicates: 0,
            flushed_at: "2026-11-01 09:00:00.000",
          },
        ],
        format: "JSONEachRow",
      });
      const rows = await run("offset_reconciliation");
      assert.deepEqual(
        rows.map((row) => [row.source, row.problem]),
        [["lost.usage", "skipped as replays, never applied before"]],
      );
    },
  };

  it("the token classes reach usage_events and both usage rollups, per record and per agent", async () => {
    const classes = ["cached_prompt_tokens", "reasoning_tokens", "audio_tokens"] as const;
    const expected = classes.map((c) => String(sum(usage, (outcome) => outcome[c] ?? 0)));
    const perAgent = classes.map((c) =>
      String(sum(usage, (outcome) => Object.values(outcome.agents).reduce((t, a) => t + (a[c] ?? 0), 0))),
    );
    assert.deepEqual(expected, perAgent, "a record's classes are its agents'");
    assert.ok(Number(expected[0]) > 0 && Number(expected[1]) > 0);
    const sums = (table: string) =>
      classes.map((c) => `(SELECT sum(${c}) FROM ${db}.${table}) AS ${table.split(" ")[0]}_${c}`);
    const agentSums = classes.map(
      (c) => `(SELECT sum(arraySum(agent_${c})) FROM ${db}.usage_events FINAL) AS agents_${c}`,
    );
    const result = await clickhouse.query({
      query: `SELECT ${[...sums("usage_events FINAL"), ...sums("usage_by_minute"), ...sums("usage_by_hour"), ...agentSums].join(", ")}`,
      format: "JSONEachRow",
    });
    const [row] = await result.json<Record<string, string>>();
    assert.deepEqual(Object.values(row ?? {}), [...expected, ...expected, ...expected, ...expected]);
  });

  it("every documented query has a check here", () => {
    assert.deepEqual(queries.map((query) => query.name).sort(), Object.keys(checks).sort());
  });

  for (const [name, check] of Object.entries(checks)) {
    it(`query ${name} matches the figures computed from the produced records`, check);
  }
});
