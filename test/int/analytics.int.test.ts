import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { checkWorkflowCostThresholds } from "../../pipeline/core/cost-thresholds.ts";
import { loadBillingConfig } from "../../pipeline/runtime/billing-config.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import type { Adjustment, InputRecordJson, SessionSummary, UsageOutcome } from "../../schemas/index.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { workflowAverages } from "../../sinks/clickhouse/workflow-averages.ts";
import { analyticsCorrections, conversionPrelude } from "../support/analytics-workload.ts";
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
/** The window the documented queries name: November 2026, by event time. */
const inNovember = (iso: string) => iso >= "2026-11-01" && iso < "2026-12-01";

/** A usage record or a correction as a money query sees it: adjustments are signed, negative. */
interface MoneyItem {
  enterprise_id: string;
  creator: string;
  level: string;
  occurred_at: string;
  records: number;
  corrections: number;
  tokens: number;
  trial_tokens: number;
  billed: bigint;
  creator_share: bigint;
  platform_fee: bigint;
}

function usageItem(outcome: UsageOutcome): MoneyItem {
  return {
    enterprise_id: outcome.enterprise_id,
    creator: outcome.mozaiks_user_id,
    level: outcome.level,
    occurred_at: outcome.occurred_at,
    records: 1,
    corrections: 0,
    tokens: outcome.tokens_used,
    trial_tokens: outcome.trial_tokens_used,
    billed: outcome.billed_micros,
    creator_share: outcome.creator_share_micros,
    platform_fee: outcome.platform_fee_micros,
  };
}

function adjustmentItem(adjustment: Adjustment): MoneyItem {
  return {
    enterprise_id: adjustment.enterprise_id,
    creator: adjustment.mozaiks_user_id,
    level: adjustment.level,
    occurred_at: adjustment.occurred_at,
    records: 0,
    corrections: 1,
    tokens: 0,
    trial_tokens: 0,
    billed: adjustment.billed_micros,
    creator_share: adjustment.creator_share_micros,
    platform_fee: adjustment.platform_fee_micros,
  };
}

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

/**
 * Every tenth usage record has its first agent report answers but no response time, as a runtime that
 * does not time its agents: the rollups leave it out of their averages, the per-answer average counts its
 * answers with no time, as the core does.
 */
function withUntimedAgent(record: InputRecordJson, index: number): InputRecordJson {
  if (record.type !== "usage" || index % 10 !== 5) return record;
  const [first] = Object.keys(record.agent_usage);
  const agents = Object.fromEntries(
    Object.entries(record.agent_usage).map(([name, agent]) => {
      if (name !== first) return [name, agent];
      const { response_time_ms: _, ...untimed } = agent;
      return [name, untimed];
    }),
  );
  return { ...record, agent_usage: agents };
}

describe("analytics: every query in docs/analytics.md runs as written and matches the billing core", () => {
  // 2000 records 45 s apart: about 18 hours, so the day, hour and minute buckets all have several values.
  // Before them, two end users the trial conversion must tell apart (one tried in October); after them,
  // voids and refunds in November and December.
  const billing = loadBillingConfig({});
  const workload = [
    ...conversionPrelude(),
    ...[
      ...generateWorkload({
        seed: 11,
        records: 2_000,
        apps: 4,
        usersPerApp: 10,
        stepMs: 45_000,
        runId: "an",
        startAt: "2026-11-01T09:00:00.000Z",
      }),
    ]
      .map(withTokenClasses)
      .map(withUntimedAgent),
  ];
  const corrections = analyticsCorrections(
    expectedRun(workload, billing).outputs.filter(
      (output): output is UsageOutcome => output.kind === "usage_outcome",
    ),
  );
  const records = [...workload, ...corrections];
  // The defaults, as the processor's: this test's configuration names no billing file.
  const { outputs } = expectedRun(records, billing);
  const usage = outputs.filter((output): output is UsageOutcome => output.kind === "usage_outcome");
  const adjustments = outputs.filter((output): output is Adjustment => output.kind === "adjustment");
  const summaries = outputs.filter((output): output is SessionSummary => output.kind === "session_summary");
  // What the queries that name November 2026 see.
  const november = usage.filter((outcome) => inNovember(outcome.occurred_at));
  const app = november.filter((outcome) => outcome.level === "app_usage");
  const money = [...usage.map(usageItem), ...adjustments.map(adjustmentItem)];
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
      "every usage row, session summary and adjustment in ClickHouse",
      async () => {
        const result = await clickhouse.query({
          query: `SELECT (SELECT count() FROM ${db}.usage_events FINAL) AS usage,
                         (SELECT count() FROM ${db}.session_summaries FINAL) AS summaries,
                         (SELECT count() FROM ${db}.adjustments FINAL) AS adjustments`,
          format: "JSONEachRow",
        });
        const [row] = await result.json<{ usage: string; summaries: string; adjustments: string }>();
        return Number(row?.usage) === usage.length &&
          Number(row?.summaries) === summaries.length &&
          Number(row?.adjustments) === adjustments.length
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
    assert.ok(
      usage.some((outcome) => !inNovember(outcome.occurred_at)),
      "usage outside the window",
    );
    // Every correction applied (none refused): voids and refunds, app and platform, in both months.
    assert.equal(adjustments.length, corrections.length);
    for (const kind of ["void", "refund"])
      for (const level of ["app_usage", "platform"])
        for (const inMonth of [true, false])
          assert.ok(
            adjustments.some(
              (a) => a.adjustment === kind && a.level === level && inNovember(a.occurred_at) === inMonth,
            ),
            `a ${kind} of ${level} ${inMonth ? "in" : "after"} November`,
          );
    // A correction of an October record dated in November.
    assert.ok(adjustments.some((a) => inNovember(a.occurred_at) && !inNovember(a.target_occurred_at)));
    // Agents that answer more than once in a record, and agents that report answers but no time.
    const agents = usage.flatMap((outcome) => Object.values(outcome.agents));
    assert.ok(agents.some((agent) => (agent.message_count ?? 0) > 1));
    assert.ok(agents.some((agent) => agent.response_time_ms === null && (agent.message_count ?? 0) > 0));
  });

  const checks: Record<string, () => Promise<void>> = {
    async top_apps_by_billed() {
      // Net: November's app usage plus the voids and refunds dated in November (negative).
      const items = money.filter((item) => item.level === "app_usage" && inNovember(item.occurred_at));
      const expected = [...group(items, (item) => item.enterprise_id)]
        .map(([enterprise_id, list]) => ({
          enterprise_id,
          records: String(sum(list, (item) => item.records)),
          corrections: String(sum(list, (item) => item.corrections)),
          net_billed: String(sum(list, (item) => item.billed)),
          net_creator_share: String(sum(list, (item) => item.creator_share)),
          net_platform_fee: String(sum(list, (item) => item.platform_fee)),
        }))
        .sort(
          (a, b) =>
            Number(BigInt(b.net_billed) - BigInt(a.net_billed)) || cmp(a.enterprise_id, b.enterprise_id),
        )
        .slice(0, 10);
      assert.ok(
        expected.some((row) => row.corrections !== "0"),
        "the corrections of the month are in the figures",
      );
      const rows = await run("top_apps_by_billed");
      assert.deepEqual(
        rows.map(({ net_billed_usd: _, ...row }) => row),
        expected,
      );
      for (const row of rows) {
        assert.equal(Number(row.net_billed_usd), Number(row.net_billed) / 1e6);
        assert.equal(
          BigInt(String(row.net_creator_share)) + BigInt(String(row.net_platform_fee)),
          BigInt(String(row.net_billed)),
        );
      }
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
      const expected = [
        ...group(november, (outcome) => `${day(outcome.occurred_at)} ${outcome.workflow_name}`),
      ]
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
      const calls = november.flatMap((outcome) =>
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

    async agent_response_time_per_answer() {
      // Per answer, from first principles: an agent's response_time_ms in a record is the sum over its
      // message_count answers there, so its average per answer is total time / total answers.
      const byAgent = new Map<
        string,
        { records: number; answers: number; time: number; perRecord: number[] }
      >();
      for (const outcome of november) {
        for (const [name, agent] of Object.entries(outcome.agents)) {
          const totals = byAgent.get(name) ?? { records: 0, answers: 0, time: 0, perRecord: [] };
          totals.records += 1;
          totals.answers += agent.message_count ?? 0;
          totals.time += agent.response_time_ms ?? 0;
          if (agent.response_time_ms !== null) totals.perRecord.push(agent.response_time_ms);
          byAgent.set(name, totals);
        }
      }
      // The core's session summaries divide the same way: each finished chat's average per agent is its
      // records' times over their answers.
      const chats = group(usage, (outcome) => `${outcome.account_key} ${outcome.chat_id}`);
      for (const summary of summaries) {
        const records = chats.get(`${summary.account_key} ${summary.chat_id}`) ?? [];
        for (const [name, performance] of Object.entries(summary.agent_performance)) {
          const mine = records.flatMap((outcome) =>
            outcome.agents[name] === undefined ? [] : [outcome.agents[name]],
          );
          const answers = mine.reduce((t, agent) => t + (agent.message_count ?? 0), 0);
          const time = mine.reduce((t, agent) => t + (agent.response_time_ms ?? 0), 0);
          assert.equal(performance.message_count, answers, `${summary.chat_id} ${name}`);
          if (answers > 0)
            near(performance.avg_response_time_ms, time / answers, 0.0051, `${summary.chat_id} ${name}`);
        }
      }
      // The workload tells the two apart: some agent's average per answer is well below its per record.
      assert.ok(
        [...byAgent.values()].some((t) => {
          const perRecord = t.perRecord.reduce((a, b) => a + b, 0) / t.perRecord.length;
          return perRecord - t.time / t.answers > 100;
        }),
        "an agent answering several times per record",
      );
      const rows = await run("agent_response_time_per_answer");
      assert.deepEqual(rows.map((row) => row.agent_name).sort(), [...byAgent.keys()].sort());
      for (const row of rows) {
        const name = String(row.agent_name);
        const totals = byAgent.get(name)!;
        assert.equal(Number(row.records), totals.records, `records of ${name}`);
        assert.equal(Number(row.answers), totals.answers, `answers of ${name}`);
        near(row.response_ms, totals.time, 1e-6, `time of ${name}`);
        near(row.avg_ms_per_answer, totals.time / totals.answers, 0.051, `average per answer of ${name}`);
      }
      const averages = rows.map((row) => Number(row.avg_ms_per_answer));
      assert.deepEqual(
        averages,
        [...averages].sort((a, b) => b - a),
        "ordered by the average, highest first",
      );
    },

    async agent_p95_response_time() {
      // Per record: one value per agent per record that reported a time, the sum of its answers there.
      const byAgent = new Map<string, { records: number; answers: number; times: number[] }>();
      for (const outcome of november) {
        for (const [name, agent] of Object.entries(outcome.agents)) {
          const totals = byAgent.get(name) ?? { records: 0, answers: 0, times: [] };
          totals.records += 1;
          totals.answers += agent.message_count ?? 0;
          if (agent.response_time_ms !== null) totals.times.push(agent.response_time_ms);
          byAgent.set(name, totals);
        }
      }
      assert.ok(
        [...byAgent.values()].some((t) => t.answers > t.records),
        "records of several answers",
      );
      assert.ok(
        [...byAgent.values()].some((t) => t.times.length < t.records),
        "records without a time",
      );
      const rows = await run("agent_p95_response_time");
      assert.deepEqual(rows.map((row) => row.agent_name).sort(), [...byAgent.keys()].sort());
      for (const row of rows) {
        const name = String(row.agent_name);
        const { records, answers, times } = byAgent.get(name)!;
        assert.equal(Number(row.records), records, `records of ${name}`);
        assert.equal(Number(row.answers), answers, `answers of ${name}`);
        near(row.avg_ms_per_record, times.reduce((a, b) => a + b, 0) / times.length, 0.051, `avg of ${name}`);
        near(row.p95_ms_per_record, quantile(times, 0.95), 0.051, `p95 of ${name}`);
      }
      const p95s = rows.map((row) => Number(row.p95_ms_per_record));
      assert.deepEqual(
        p95s,
        [...p95s].sort((a, b) => b - a),
        "ordered by p95, highest first",
      );
    },

    async trial_conversion() {
      // Per end user, in November: tried = used trial tokens; converted = tried and used paid tokens at
      // or after the first trial use. The share is of the tried, so it is at most 1.
      const perApp = [...group(app, (outcome) => outcome.enterprise_id)].map(([enterprise_id, items]) => {
        let tried = 0;
        let converted = 0;
        let payers = 0;
        for (const [, mine] of group(items, (outcome) => outcome.platform_user_id!)) {
          if (mine.some((outcome) => outcome.paid_tokens_used > 0)) payers++;
          const trials = mine.filter((outcome) => outcome.trial_tokens_used > 0);
          if (trials.length === 0) continue;
          tried++;
          const first = Math.min(...trials.map((outcome) => Date.parse(outcome.occurred_at)));
          if (
            mine.some((outcome) => outcome.paid_tokens_used > 0 && Date.parse(outcome.occurred_at) >= first)
          )
            converted++;
        }
        return { enterprise_id, trial_users: tried, converted_users: converted, payers };
      });
      // The workload has a payer who did not try in the month and a trier who did not pay: all payers of
      // the month over the triers would be another figure.
      assert.ok(perApp.some((row) => row.payers !== row.converted_users));
      assert.ok(perApp.some((row) => row.converted_users < row.trial_users));
      const expected = perApp
        .filter((row) => row.trial_users > 0)
        .map(({ payers: _, ...row }) => row)
        .sort((a, b) => cmp(a.enterprise_id, b.enterprise_id));
      const rows = await run("trial_conversion");
      assert.deepEqual(
        rows.map((row) => ({
          enterprise_id: row.enterprise_id,
          trial_users: Number(row.trial_users),
          converted_users: Number(row.converted_users),
        })),
        expected,
      );
      for (const [index, row] of rows.entries()) {
        const { converted_users, trial_users } = expected[index]!;
        near(row.conversion, converted_users / trial_users, 0.0006, "conversion");
        assert.ok(Number(row.conversion) <= 1);
      }
    },

    async creator_earnings_by_month() {
      // Net, every month: app usage plus the voids and refunds of the month they happened in.
      const items = money.filter((item) => item.level === "app_usage");
      const expected = [...group(items, (item) => `${month(item.occurred_at)} ${item.creator}`)]
        .map(([, list]) => ({
          month: month(list[0]!.occurred_at),
          creator: list[0]!.creator,
          net_billed: String(sum(list, (item) => item.billed)),
          net_earnings: String(sum(list, (item) => item.creator_share)),
        }))
        .sort(
          (a, b) =>
            cmp(a.month, b.month) ||
            Number(BigInt(b.net_earnings) - BigInt(a.net_earnings)) ||
            cmp(a.creator, b.creator),
        );
      assert.deepEqual(
        [...new Set(expected.map((row) => row.month))],
        ["2026-10-01", "2026-11-01", "2026-12-01"],
        "October's usage, November's usage and corrections, December's corrections",
      );
      const rows = await run("creator_earnings_by_month");
      assert.deepEqual(
        rows.map(({ net_earnings_usd: _, ...row }) => row),
        expected,
      );
      for (const row of rows) assert.equal(Number(row.net_earnings_usd), Number(row.net_earnings) / 1e6);
    },

    async platform_revenue_by_month() {
      // Money net of the month's corrections; tokens gross, as used.
      const expected = [...group(money, (item) => `${month(item.occurred_at)} ${item.level}`)]
        .map(([, list]) => ({
          month: month(list[0]!.occurred_at),
          level: list[0]!.level,
          gross_tokens: String(sum(list, (item) => item.tokens)),
          gross_trial_tokens: String(sum(list, (item) => item.trial_tokens)),
          net_billed: String(sum(list, (item) => item.billed)),
          net_platform_fee: String(sum(list, (item) => item.platform_fee)),
        }))
        .sort((a, b) => cmp(a.month, b.month) || cmp(a.level, b.level));
      assert.ok(expected.some((row) => row.month === "2026-12-01" && row.level === "platform"));
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
      for (const row of rows) {
        const items = byWorkflow.get(`${String(row.enterprise_id)} ${String(row.workflow_name)}`)!;
        const average = Number(sum(items, (item) => item.total_cost_micros)) / items.length;
        near(
          row.times_average,
          Number(row.cost_micros) / average,
          0.0051,
          `times average of ${String(row.chat_id)}`,
        );
      }
      // A workflow whose sessions cost less than a micro each on average: avg_cost_micros is 0, and the
      // session over the threshold is still reported, against the exact average. (This adds rows to
      // session_summaries: the checks above that read it have run; none below reads it.)
      const zero = [0n, 0n, 2n].map((cost, index) => ({
        record_id: `zero-avg-end-${index}`,
        account_key: `app:zero-avg-app:u${index}`,
        level: "app_usage",
        enterprise_id: "zero-avg-app",
        mozaiks_user_id: "zero-avg-creator",
        platform_user_id: `u${index}`,
        session_id: `zero-avg-s${index}`,
        chat_id: `zero-avg-c${index}`,
        workflow_name: "zero-avg",
        started_at: "2026-11-03 00:00:00.000",
        ended_at: "2026-11-03 00:00:00.000",
        session_duration_seconds: 0,
        total_tokens: 0,
        total_cost_micros: cost.toString(),
        billed_micros: "0",
      }));
      const over = zero.filter(
        (session) =>
          checkWorkflowCostThresholds({
            currentCostMicros: BigInt(session.total_cost_micros),
            currentTokens: 0,
            minSessions: 1,
            averages: {
              enterprise_id: "zero-avg-app",
              workflow_name: "zero-avg",
              session_count: 3,
              total_cost_micros: 2n,
              total_tokens: 0,
              avg_session_duration_seconds: 0,
              avg_agents_per_session: 0,
            },
          }).status === "exceeded",
      );
      assert.deepEqual(
        over.map((session) => session.chat_id),
        ["zero-avg-c2"],
      );
      await clickhouse.insert({ table: `${db}.session_summaries`, values: zero, format: "JSONEachRow" });
      const withZero = await run("sessions_over_cost_threshold");
      assert.deepEqual(
        withZero.map((row) => String(row.chat_id)).sort(),
        [...expected, "zero-avg-c2"].sort(),
      );
      const row = withZero.find((r) => r.chat_id === "zero-avg-c2");
      assert.equal(row?.workflow_avg_cost_micros, "0");
      // 2 micros against an average of 2/3.
      assert.equal(Number(row?.times_average), 3);
    },

    async agent_token_share() {
      // From first principles: an agent's tokens are all of its tokens (prompt, completion and the three
      // classes), which add up to the record's tokens_used; its share of the record's cost is floored.
      const byAgent = new Map<string, { tokens: bigint; cost: bigint }>();
      let cost = 0n;
      let attributed = 0n;
      let calls = 0n;
      for (const outcome of november) {
        if (outcome.tokens_used === 0) continue;
        const agents = Object.entries(outcome.agents).map(([name, agent]) => ({
          name,
          tokens: BigInt(
            agent.prompt_tokens +
              agent.completion_tokens +
              (agent.cached_prompt_tokens ?? 0) +
              (agent.reasoning_tokens ?? 0) +
              (agent.audio_tokens ?? 0),
          ),
        }));
        assert.equal(
          sum(agents, (agent) => agent.tokens),
          BigInt(outcome.tokens_used),
          outcome.record_id,
        );
        let shares = 0n;
        for (const { name, tokens } of agents) {
          const share = (outcome.cost_micros * tokens) / BigInt(outcome.tokens_used);
          const totals = byAgent.get(name) ?? { tokens: 0n, cost: 0n };
          totals.tokens += tokens;
          totals.cost += share;
          byAgent.set(name, totals);
          shares += share;
        }
        // The shares add up to the record's cost, less under one micro per agent (the floors).
        const left = outcome.cost_micros - shares;
        assert.ok(left >= 0n && left < BigInt(agents.length), `${outcome.record_id}: ${left} micros left`);
        cost += outcome.cost_micros;
        attributed += shares;
        calls += BigInt(agents.length);
      }
      assert.ok(
        november.some((outcome) => (outcome.cached_prompt_tokens ?? 0) + (outcome.reasoning_tokens ?? 0) > 0),
        "records with token classes",
      );
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
      // Over all agents: every record's cost, less the floors.
      const total = sum(rows, (row) => BigInt(String(row.attributed_cost_micros)));
      assert.equal(total, attributed);
      assert.ok(
        cost - total >= 0n && cost - total < calls,
        `${cost - total} of ${cost} micros not attributed`,
      );
      for (const row of rows)
        assert.equal(Number(row.attributed_cost_usd), Number(row.attributed_cost_micros) / 1e6);
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
