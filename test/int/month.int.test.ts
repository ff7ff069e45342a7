import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import kafkajs from "kafkajs";
import { runAudit } from "../../pipeline/audit/run-audit.ts";
import type { BillingConfig } from "../../pipeline/core/index.ts";
import { createLogger } from "../../pipeline/log.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import type { InputRecordJson, TopicOutput, UsageOutcome } from "../../schemas/index.ts";
import { expectedRun } from "../support/expected.ts";
import { TestPipeline } from "../support/harness.ts";
import { stopProcess } from "../support/processes.ts";
import { describeDifference } from "../support/verify.ts";

/**
 * A month of traffic with every credit rule of issue 16 at work, through the live pipeline with a
 * processor SIGKILLed in the middle: weekly app trials and the creators' monthly allowance reset, dated
 * grants burn and expire, voids and refunds reverse billed usage, all by the records' own event times
 * (no tick records: tests run without them). The audit over the whole topic finds the stores as the
 * billing core computes them.
 */

const DAY_MS = 86_400_000;
const DAYS = 33;
// Ending a few minutes ago, so every record is within the event-time bounds of its log time.
const START = Date.now() - DAYS * DAY_MS - 10 * 60_000;

/**
 * A monthly boundary inside the platform records' span (they fill about the first 24 days): a calendar
 * month starting on the 1st left it outside on the first days of a month, and the test failed by the
 * date (CI, 4 December). Midnight UTC of the first day from day 8 whose date is at most the 28th, so the
 * anchor exists in every month.
 */
function monthlyAnchorInside(start: number): string {
  for (let d = 8; ; d++) {
    const day = new Date(start + d * DAY_MS);
    if (day.getUTCDate() <= 28)
      return new Date(Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate())).toISOString();
  }
}

const BILLING = {
  app_trial_tokens: { default: 4_000 },
  platform_allowance_tokens: 20_000,
  allowance_period: {
    // Mondays, UTC; what a week leaves (up to 1,000 tokens) is carried into the next one.
    app_usage: { every: "week", anchor: "2025-01-06T00:00:00Z", rollover_max_tokens: 1_000 },
    // platform: the default calendar months, but from an anchor inside the window
    platform: { every: "month", anchor: monthlyAnchorInside(START) },
  },
};

type AppIds = { enterprise_id: string; mozaiks_user_id: string; platform_user_id: string };

/** Two dated grants per end user: one that expires on day 9 with tokens left, one that outlives the month. */
function grantsOf(usage: readonly InputRecordJson[], start: number): InputRecordJson[] {
  const users = new Map<string, AppIds>();
  for (const r of usage) {
    if (r.type === "usage" && r.level === "app_usage")
      users.set(`${r.enterprise_id}:${r.platform_user_id}`, {
        enterprise_id: r.enterprise_id,
        mozaiks_user_id: r.mozaiks_user_id,
        platform_user_id: r.platform_user_id!,
      });
  }
  const day = (d: number) => new Date(start + d * DAY_MS).toISOString();
  return [...users.values()].flatMap((ids, i) => [
    {
      type: "credit",
      kind: "grant",
      record_id: `month-grant-short-${i}`,
      level: "app_usage",
      ...ids,
      tokens: 30_000,
      priority: 1,
      expires_at: day(9),
      occurred_at: day(2),
    },
    {
      type: "credit",
      kind: "grant",
      record_id: `month-grant-long-${i}`,
      level: "app_usage",
      ...ids,
      tokens: 2_000,
      priority: 0,
      effective_at: day(12),
      expires_at: day(60),
      occurred_at: day(11),
    },
  ]);
}

/** A void of every 6th billed app record and a third refunded of every 4th other one, two hours after it. */
function correctionsOf(outputs: readonly TopicOutput[]): InputRecordJson[] {
  const billed = outputs.filter(
    (o): o is UsageOutcome => o.kind === "usage_outcome" && o.level === "app_usage" && o.billed_micros > 2n,
  );
  return billed.flatMap((outcome, index): InputRecordJson[] => {
    const ids = {
      level: "app_usage" as const,
      enterprise_id: outcome.enterprise_id,
      mozaiks_user_id: outcome.mozaiks_user_id,
      platform_user_id: outcome.platform_user_id!,
      target_record_id: outcome.record_id,
      occurred_at: new Date(Date.parse(outcome.occurred_at) + 2 * 3_600_000).toISOString(),
    };
    if (index % 6 === 0) return [{ type: "void", record_id: `void-${outcome.record_id}`, ...ids }];
    if (index % 4 === 0)
      return [
        {
          type: "refund",
          record_id: `refund-${outcome.record_id}`,
          ...ids,
          amount_micros: String(outcome.billed_micros / 3n),
        },
      ];
    return [];
  });
}

const byTime = (a: InputRecordJson, b: InputRecordJson) =>
  Date.parse(a.occurred_at) - Date.parse(b.occurred_at);

function budgetEventsOf(outputs: readonly TopicOutput[], event: string, level: string): number {
  return outputs.filter((o) => o.kind === "budget_event" && o.event === event && o.level === level).length;
}

describe("a month of credits through the live pipeline: periods, grant expiries, voids and refunds audit clean", {
  timeout: 8 * 60_000,
}, () => {
  let dir: string;
  let pipeline: TestPipeline;
  let billing: BillingConfig;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), "agentmeter-month-"));
    const billingFile = path.join(dir, "billing.json");
    writeFileSync(billingFile, JSON.stringify(BILLING));
    pipeline = await TestPipeline.create({ env: { AGENTMETER_BILLING_CONFIG: billingFile } });
    billing = pipeline.billing;
    // The records reach Kafka with their own dates, up to 33 days back, and the broker's default retention
    // is 7 days by log time: a rolled segment of them may be deleted before the audit reads it (CI lost
    // the first half that way). The input topic keeps everything, as a billing topic must for audits.
    await (await pipeline.admin()).alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: kafkajs.ConfigResourceTypes.TOPIC,
          name: pipeline.topic,
          configEntries: [{ name: "retention.ms", value: "-1" }],
        },
      ],
    });
  });

  after(async () => {
    await pipeline?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("resets, expires and reverses as the core computes, across a processor SIGKILL", async (t) => {
    const start = START;
    const workload = [
      ...generateWorkload({
        seed: 16,
        records: 3_000,
        apps: 2,
        usersPerApp: 6,
        topUpShare: 0.04,
        stepMs: Math.floor((DAYS * DAY_MS) / 3_000),
        startAt: new Date(start).toISOString(),
        runId: "month",
      }),
    ];
    const withGrants = [...workload, ...grantsOf(workload, start)].sort(byTime);
    const corrections = correctionsOf(expectedRun(withGrants, billing).outputs);
    const records = [...withGrants, ...corrections].sort(byTime);

    // Given a stream in which every rule is at work (the core's own figures, before any server)
    const { outputs } = expectedRun(records, billing);
    assert.ok(budgetEventsOf(outputs, "period_reset", "app_usage") >= 10, "weekly trial resets");
    assert.ok(budgetEventsOf(outputs, "period_reset", "platform") >= 1, "a monthly platform reset");
    assert.ok(
      budgetEventsOf(outputs, "grant_expired", "app_usage") >= 5,
      "grants forfeited with tokens left",
    );
    const adjustments = outputs.filter((o) => o.kind === "adjustment");
    assert.ok(adjustments.filter((o) => o.adjustment === "void").length >= 10, "voids applied");
    assert.ok(adjustments.filter((o) => o.adjustment === "refund").length >= 10, "refunds applied");
    for (const a of adjustments) {
      assert.equal(a.creator_share_micros + a.platform_fee_micros, a.billed_micros, `${a.record_id} splits`);
    }

    t.diagnostic(
      `${records.length} records; period_reset app ${budgetEventsOf(outputs, "period_reset", "app_usage")}, platform ${budgetEventsOf(outputs, "period_reset", "platform")}; grant_expired ${budgetEventsOf(outputs, "grant_expired", "app_usage")}; voids ${adjustments.filter((o) => o.adjustment === "void").length}, refunds ${adjustments.filter((o) => o.adjustment === "refund").length}; rejected ${outputs.filter((o) => o.kind === "rejected").length}`,
    );

    // When it goes through two processors, the first SIGKILLed halfway
    const half = Math.floor(records.length / 2);
    const first = pipeline.spawnProcessor("month-a");
    await first.started;
    await pipeline.produce(records.slice(0, half));
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    first.child.kill("SIGKILL");
    await first.exited;
    const second = pipeline.spawnProcessor("month-b");
    await second.started;
    await pipeline.produce(records.slice(half));
    await pipeline.caughtUp(180_000);
    await stopProcess(second, "SIGTERM");

    // Then the audit of the whole topic finds nothing to report
    const report = await runAudit({
      config: pipeline.config,
      billing,
      range: { kind: "all" },
      logger: createLogger("silent"),
      workers: 0,
    });
    assert.equal(report.mode, "complete", "the whole topic, from offset 0: absolute figures compared");
    assert.deepEqual(report.differences.map(describeDifference), [], "the stores are the core's");
    assert.ok(
      report.counts.records >= records.length,
      `the audit read every record (${report.counts.records})`,
    );

    // And ClickHouse holds each accepted correction once (raw rows: none doubled by the kill)
    const clickhouse = clickHouseFor(pipeline.config);
    try {
      const result = await clickhouse.query({
        query: `SELECT adjustment, count() AS n FROM \`${pipeline.config.CLICKHOUSE_DATABASE}\`.adjustments GROUP BY adjustment ORDER BY adjustment`,
        format: "JSONEachRow",
      });
      const counts = Object.fromEntries(
        (await result.json<{ adjustment: string; n: string }>()).map((r) => [r.adjustment, Number(r.n)]),
      );
      assert.deepEqual(counts, {
        refund: adjustments.filter((o) => o.adjustment === "refund").length,
        void: adjustments.filter((o) => o.adjustment === "void").length,
      });
    } finally {
      await clickhouse.close();
    }
  });
});
