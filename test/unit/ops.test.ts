import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { Admin } from "kafkajs";
import { ConfigSchema, loadConfig } from "../../pipeline/config.ts";
import { HEALTH_PATHS, HealthServer } from "../../pipeline/ops/health-server.ts";
import {
  consumerLag,
  DisabledMetrics,
  type OffsetsAdmin,
  ProcessorMetrics,
  storeOfError,
} from "../../pipeline/ops/metrics.ts";
import { combineReadiness, LoopWatchdog, type Readiness, StorePings } from "../../pipeline/ops/readiness.ts";
import { requireTool, skipWithout } from "../support/tools.ts";

/** The value of one series in Prometheus' text format, or undefined when the series is absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split("\n")) {
    if (line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    if (line.slice(0, space) === series) return Number(line.slice(space + 1));
  }
  return undefined;
}

describe("ops: metrics, health and readiness over HTTP", () => {
  const metrics = new ProcessorMetrics({ maxPendingRecords: 50_000, maxStoreLagSeconds: 30 });
  let now = 1_000_000;
  const watchdog = new LoopWatchdog(5_000, () => now);
  let readiness: Readiness = { ready: false, reasons: ["not in the consumer group yet"] };
  const server = new HealthServer({
    metrics,
    liveness: () => watchdog.liveness(),
    readiness: () => readiness,
  });
  let base = "";

  before(async () => {
    const { port } = await server.start(0, "127.0.0.1");
    assert.ok(port > 0);
    base = `http://127.0.0.1:${port}`;
  });
  after(() => server.close());

  it("serves every counter with its exact value after the calls that count it", async () => {
    metrics.partitionsAssigned([0, 1, 2]);
    metrics.recordsConsumed(120);
    metrics.recordsConsumed(7);
    metrics.recordsApplied(110);
    metrics.deadLettered("RECORD_INVALID", 3);
    metrics.deadLettered("RECORD_INVALID");
    metrics.deadLettered("RECORD_WRONG_PARTITION", 2);
    metrics.duplicatesIgnored(5);
    metrics.replaysSkipped(11);
    metrics.budgetEventPublished("exhausted", 2);
    metrics.budgetEventPublished("threshold_reached");
    metrics.cycleWritten({ seconds: 0.2, accounts: 10, ledgers: 2, projections: 30, rows: 41 });
    metrics.cycleWritten({ seconds: 3, accounts: 1, ledgers: 0, projections: 4, rows: 6 });
    metrics.storeError("mongodb");
    metrics.storeError("mongodb");
    metrics.storeRetry("mongodb");
    metrics.storeRetry("clickhouse");
    metrics.pending(1, 1_234, 2.5);
    metrics.consumerLag(2, 99);
    metrics.decisionAge("fetched", 0.004);
    metrics.decisionAge("published", 0.03);
    metrics.decisionAge("published", -1); // a producer clock ahead of the processor's: counted as 0

    const response = await fetch(`${base}${HEALTH_PATHS.metrics}`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    const expected: Array<[string, number]> = [
      ["agentmeter_records_consumed_total", 127],
      ["agentmeter_records_applied_total", 110],
      ['agentmeter_records_dead_lettered_total{reason_code="RECORD_INVALID"}', 4],
      ['agentmeter_records_dead_lettered_total{reason_code="RECORD_WRONG_PARTITION"}', 2],
      ["agentmeter_records_duplicate_total", 5],
      ["agentmeter_records_replay_skipped_total", 11],
      ['agentmeter_budget_events_total{event="exhausted"}', 2],
      ['agentmeter_budget_events_total{event="threshold_reached"}', 1],
      ['agentmeter_store_documents_written_total{store="mongodb_accounts"}', 11],
      ['agentmeter_store_documents_written_total{store="mongodb_ledgers"}', 2],
      ['agentmeter_store_documents_written_total{store="mongodb_projections"}', 34],
      ['agentmeter_store_documents_written_total{store="clickhouse_rows"}', 47],
      ["agentmeter_write_behind_cycle_duration_seconds_count", 2],
      ['agentmeter_decision_latency_seconds_count{stage="fetched"}', 1],
      ['agentmeter_decision_latency_seconds_count{stage="published"}', 2],
      ['agentmeter_decision_latency_seconds_sum{stage="published"}', 0.03],
      ['agentmeter_decision_latency_seconds_bucket{le="0.005",stage="published"}', 1],
      ['agentmeter_decision_latency_seconds_bucket{le="0.05",stage="published"}', 2],
      ["agentmeter_write_behind_cycle_duration_seconds_sum", 3.2],
      ['agentmeter_write_behind_cycle_duration_seconds_bucket{le="0.25"}', 1],
      ['agentmeter_write_behind_cycle_duration_seconds_bucket{le="2.5"}', 1],
      ['agentmeter_write_behind_cycle_duration_seconds_bucket{le="5"}', 2],
      ['agentmeter_write_behind_cycle_duration_seconds_bucket{le="+Inf"}', 2],
      ['agentmeter_store_errors_total{store="mongodb"}', 2],
      ['agentmeter_store_errors_total{store="clickhouse"}', 0],
      ['agentmeter_store_retries_total{store="mongodb"}', 1],
      ['agentmeter_store_retries_total{store="clickhouse"}', 1],
      ['agentmeter_pending_records{partition="1"}', 1_234],
      ['agentmeter_store_lag_seconds{partition="1"}', 2.5],
      ['agentmeter_consumer_lag_records{partition="2"}', 99],
      ["agentmeter_assigned_partitions", 3],
      ["agentmeter_pending_records_bound", 50_000],
      ["agentmeter_store_lag_bound_seconds", 30],
    ];
    for (const [series, value] of expected) assert.equal(sample(text, series), value, series);
    // The process's default metrics are on the same registry, under their standard names.
    assert.ok(sample(text, "process_cpu_seconds_total") !== undefined, "process_cpu_seconds_total");
    assert.match(text, /^nodejs_heap_size_used_bytes /m);
    // No series carries an id-like label: only the bounded ones.
    const labelNames = new Set([...text.matchAll(/^agentmeter_\w+\{(\w+)=/gm)].map((match) => match[1]));
    assert.deepEqual([...labelNames].sort(), ["event", "le", "partition", "reason_code", "stage", "store"]);
  });

  it("/healthz: 200 while the loop ticks, 503 with a one-line JSON reason once it is stuck", async () => {
    // Before the first tick the processor is starting: alive.
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
    watchdog.tick();
    now += 4_000;
    const alive = await fetch(`${base}/healthz`);
    assert.equal(alive.status, 200);
    assert.deepEqual(await alive.json(), { status: "alive" });
    now += 2_000;
    const stuck = await fetch(`${base}/healthz`);
    assert.equal(stuck.status, 503);
    const body = await stuck.text();
    assert.equal(body.trimEnd().split("\n").length, 1, "one line");
    assert.deepEqual(JSON.parse(body), {
      status: "stuck",
      reason: "consumer loop stuck: no fetch or heartbeat for 6000 ms (limit 5000 ms)",
    });
    watchdog.tick();
    assert.equal((await fetch(`${base}/healthz`)).status, 200);
  });

  it("/readyz: 503 with the reasons, then 200 once ready; agentmeter_ready follows", async () => {
    const notReady = await fetch(`${base}/readyz`);
    assert.equal(notReady.status, 503);
    assert.deepEqual(await notReady.json(), { ready: false, reasons: ["not in the consumer group yet"] });
    let text = await (await fetch(`${base}/metrics`)).text();
    assert.equal(sample(text, "agentmeter_ready"), 0);

    readiness = { ready: true, reasons: [] };
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true, reasons: [] });
    text = await (await fetch(`${base}/metrics`)).text();
    assert.equal(sample(text, "agentmeter_ready"), 1);
  });

  it("404 for any other path, 405 for another method", async () => {
    const missing = await fetch(`${base}/nope`);
    assert.equal(missing.status, 404);
    assert.deepEqual(await missing.json(), { error: "not found: /nope" });
    assert.equal((await fetch(`${base}/`)).status, 404);
    assert.equal((await fetch(`${base}/metrics`, { method: "POST", body: "x" })).status, 405);
    // A query string does not change the path.
    assert.equal((await fetch(`${base}/healthz?verbose=1`)).status, 200);
  });

  it("partitionRevoked removes the partition's series; a new assignment removes what it left out", async () => {
    metrics.pending(0, 5, 1);
    metrics.consumerLag(0, 7);
    metrics.consumerLag(1, 8);
    metrics.partitionRevoked(2);
    let text = await (await fetch(`${base}/metrics`)).text();
    assert.equal(sample(text, 'agentmeter_consumer_lag_records{partition="2"}'), undefined);
    assert.equal(sample(text, 'agentmeter_consumer_lag_records{partition="1"}'), 8);
    assert.equal(sample(text, 'agentmeter_pending_records{partition="1"}'), 1_234);
    assert.equal(sample(text, "agentmeter_assigned_partitions"), 2);

    // A partition with series that was never assigned (a stage still draining) goes too.
    metrics.pending(9, 1, 1);
    metrics.partitionsAssigned([0, 5]);
    text = await (await fetch(`${base}/metrics`)).text();
    assert.equal(sample(text, 'agentmeter_pending_records{partition="9"}'), undefined);
    for (const name of ["consumer_lag_records", "pending_records", "store_lag_seconds"])
      assert.equal(sample(text, `agentmeter_${name}{partition="1"}`), undefined, name);
    assert.equal(sample(text, 'agentmeter_pending_records{partition="0"}'), 5);
    assert.equal(sample(text, 'agentmeter_consumer_lag_records{partition="0"}'), 7);
    assert.equal(sample(text, "agentmeter_assigned_partitions"), 2);
    assert.deepEqual(metrics.ownedPartitions, [0, 5]);
    // Counters without a partition label are untouched by revocation.
    assert.equal(sample(text, "agentmeter_records_consumed_total"), 127);
  });
});

describe("ops: planDurable", () => {
  it("counts a durable plan's records, dead letters by code and budget events by type, exactly", async () => {
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    const plan = {
      stats: { consumed: 10, applied: 6, replayedSkipped: 1, duplicates: 2, deadLettered: 3 },
      deadLetters: [
        { reason_code: "RECORD_INVALID" as const },
        { reason_code: "UNKNOWN_MODEL" as const },
        { reason_code: "RECORD_INVALID" as const },
      ],
      budgetEvents: [
        { event: "exhausted" as const },
        { event: "resumable" as const },
        { event: "exhausted" as const },
      ],
    };
    metrics.planDurable(plan);
    metrics.planDurable({ ...plan, deadLetters: [], budgetEvents: [] });
    const { body } = await metrics.text();
    const expected: Array<[string, number]> = [
      ["agentmeter_records_consumed_total", 20],
      ["agentmeter_records_applied_total", 12],
      ["agentmeter_records_replay_skipped_total", 2],
      ["agentmeter_records_duplicate_total", 4],
      ['agentmeter_records_dead_lettered_total{reason_code="RECORD_INVALID"}', 2],
      ['agentmeter_records_dead_lettered_total{reason_code="UNKNOWN_MODEL"}', 1],
      ['agentmeter_budget_events_total{event="exhausted"}', 2],
      ['agentmeter_budget_events_total{event="resumable"}', 1],
    ];
    for (const [series, value] of expected) assert.equal(sample(body, series), value, series);
  });

  it("counts nothing when metrics are off (AGENTMETER_METRICS_PORT=0)", async () => {
    const metrics: ProcessorMetrics = new DisabledMetrics();
    metrics.planDurable({
      stats: { consumed: 10, applied: 10, replayedSkipped: 0, duplicates: 0 },
      deadLetters: [],
      budgetEvents: [{ event: "exhausted" as const }],
    });
    metrics.pending(0, 5, 1);
    const { body } = await metrics.text();
    assert.equal(sample(body, "agentmeter_records_consumed_total"), 0);
    assert.equal(sample(body, 'agentmeter_pending_records{partition="0"}'), undefined);
  });
});

describe("ops: the health server's lifecycle", () => {
  it("close() frees the port even with a keep-alive connection open; a second start on it works", async () => {
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    const options = {
      metrics,
      liveness: () => ({ alive: true }),
      readiness: () => ({ ready: true, reasons: [] }),
    };
    const first = new HealthServer(options);
    const { port } = await first.start(0, "127.0.0.1");
    assert.equal((await fetch(`http://127.0.0.1:${port}/healthz`)).status, 200);
    await first.close();
    await assert.rejects(fetch(`http://127.0.0.1:${port}/healthz`));
    const second = new HealthServer(options);
    assert.equal((await second.start(port, "127.0.0.1")).port, port);
    assert.equal(second.port, port);
    await second.close();
  });

  it("a readiness callback that throws is a 503 naming the failure, not a crash", async () => {
    const server = new HealthServer({
      metrics: new ProcessorMetrics({ defaultMetrics: false }),
      liveness: () => ({ alive: true }),
      readiness: async () => {
        throw new Error("boom\nsecond line");
      },
    });
    const { port } = await server.start(0, "127.0.0.1");
    try {
      const response = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(response.status, 503);
      assert.deepEqual(await response.json(), {
        ready: false,
        reasons: ["readiness check failed: boom second line"],
      });
    } finally {
      await server.close();
    }
  });

  it("agentmeter_ready follows readiness from scrapes alone, where nothing ever asks /readyz", async () => {
    let ready = true;
    let calls = 0;
    const server = new HealthServer({
      metrics: new ProcessorMetrics({ defaultMetrics: false }),
      liveness: () => ({ alive: true }),
      readiness: () => {
        calls += 1;
        if (ready) return { ready: true, reasons: [] };
        throw new Error("not in the consumer group");
      },
    });
    const { port } = await server.start(0, "127.0.0.1");
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    try {
      assert.equal(sample(await scrape(), "agentmeter_ready"), 1, "the first scrape of a ready processor");
      ready = false;
      assert.equal(sample(await scrape(), "agentmeter_ready"), 0);
      // A callback that threw synchronously must not leave its check "in flight" for ever.
      ready = true;
      assert.equal(sample(await scrape(), "agentmeter_ready"), 1);
      assert.equal(calls, 3, "one check per scrape");
    } finally {
      await server.close();
    }
  });

  it("a scrape does not wait for a hung readiness check: last value now, the check's own when it ends", async () => {
    let hang = false;
    const hung: Array<(readiness: Readiness) => void> = [];
    const server = new HealthServer({
      metrics: new ProcessorMetrics({ defaultMetrics: false }),
      liveness: () => ({ alive: true }),
      readiness: () => {
        if (!hang) return { ready: true, reasons: [] };
        return new Promise<Readiness>((resolve) => hung.push(resolve));
      },
      scrapeReadinessWaitMs: 50,
    });
    const { port } = await server.start(0, "127.0.0.1");
    const scrape = async () => (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    try {
      assert.equal(sample(await scrape(), "agentmeter_ready"), 1);
      // A store hangs: each scrape answers after the wait, with the last known value.
      hang = true;
      const started = Date.now();
      assert.equal(sample(await scrape(), "agentmeter_ready"), 1);
      assert.equal(sample(await scrape(), "agentmeter_ready"), 1);
      assert.ok(Date.now() - started < 2_000, "scrapes are not held by the hung check");
      assert.equal(hung.length, 1, "scrapes share the check in flight");
      // The check ends (its ping timed out): the next scrape shows its outcome, no /readyz needed.
      hung[0]!({ ready: false, reasons: ["mongodb did not answer within 5000 ms"] });
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(sample(await scrape(), "agentmeter_ready"), 0);
      assert.equal(hung.length, 2, "that scrape started a new check");
    } finally {
      for (const resolve of hung) resolve({ ready: true, reasons: [] });
      await server.close();
    }
  });
});

describe("ops: consumer lag", () => {
  const ends = [
    { partition: 0, offset: "120", high: "120", low: "0" },
    { partition: 1, offset: "50", high: "50", low: "10" },
    { partition: 2, offset: "9000000000000000", high: "9000000000000000", low: "8999999999999000" },
    { partition: 3, offset: "40", high: "40", low: "30" },
    { partition: 4, offset: "7", high: "7", low: "0" },
  ];
  const committed = [
    { partition: 0, offset: "100", metadata: null },
    // no commit yet: everything the log still holds
    { partition: 1, offset: "-1", metadata: null },
    { partition: 2, offset: "8999999999999990", metadata: null },
    // committed before the log start (retention): from the log start
    { partition: 3, offset: "5", metadata: null },
    { partition: 4, offset: "7", metadata: null },
  ];

  it("consumerLag: end minus committed, per partition, exactly", () => {
    assert.deepEqual(
      [...consumerLag(ends, committed)],
      [
        [0, 20],
        [1, 40],
        [2, 10],
        [3, 10],
        [4, 0],
      ],
    );
  });

  it("kafkajs' Admin is an OffsetsAdmin (checked by the compiler)", () => {
    const fits: (admin: Admin) => OffsetsAdmin = (admin) => admin;
    assert.equal(typeof fits, "function");
  });

  it("the lag poller sets the lag of the partitions this member owns, from a fake admin", async () => {
    const calls: string[] = [];
    const admin: OffsetsAdmin = {
      fetchTopicOffsets: async (topic) => {
        calls.push(`end:${topic}`);
        return ends;
      },
      fetchOffsets: async ({ groupId, topics }) => {
        calls.push(`group:${groupId}:${topics.join(",")}`);
        return [
          { topic: "other", partitions: [{ partition: 0, offset: "0" }] },
          { topic: "agentmeter.usage.v1", partitions: committed },
        ];
      },
    };
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    metrics.partitionsAssigned([0, 1, 3]);
    const poller = metrics.startLagPoller(admin, "agentmeter-processor", "agentmeter.usage.v1", 60_000);
    try {
      const lag = await poller.poll();
      assert.deepEqual(
        [...lag],
        [
          [0, 20],
          [1, 40],
          [3, 10],
        ],
      );
      assert.deepEqual(calls, ["end:agentmeter.usage.v1", "group:agentmeter-processor:agentmeter.usage.v1"]);
      const { body } = await metrics.text();
      assert.equal(sample(body, 'agentmeter_consumer_lag_records{partition="0"}'), 20);
      assert.equal(sample(body, 'agentmeter_consumer_lag_records{partition="1"}'), 40);
      assert.equal(sample(body, 'agentmeter_consumer_lag_records{partition="3"}'), 10);
      assert.equal(sample(body, 'agentmeter_consumer_lag_records{partition="2"}'), undefined, "not owned");
    } finally {
      poller.stop();
    }
  });

  it("the poller's timer polls on its own, skips overlapping ticks and counts failures", async () => {
    let polls = 0;
    let fail = false;
    const errors: unknown[] = [];
    const admin: OffsetsAdmin = {
      fetchTopicOffsets: async () => {
        polls++;
        if (fail) throw new Error("broker gone");
        return [{ partition: 0, high: "10", low: "0" }];
      },
      fetchOffsets: async () => [{ topic: "t", partitions: [{ partition: 0, offset: "4" }] }],
    };
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    metrics.partitionsAssigned([0]);
    const poller = metrics.startLagPoller(admin, "g", "t", 10, (error) => errors.push(error));
    try {
      await waitFor(() => polls >= 2);
      let body = (await metrics.text()).body;
      assert.equal(sample(body, 'agentmeter_consumer_lag_records{partition="0"}'), 6);
      fail = true;
      await waitFor(() => errors.length >= 1);
      body = (await metrics.text()).body;
      assert.ok((sample(body, "agentmeter_consumer_lag_poll_failures_total") ?? 0) >= 1);
      assert.equal(sample(body, 'agentmeter_consumer_lag_records{partition="0"}'), 6, "last value kept");
    } finally {
      poller.stop();
    }
    const stoppedAt = polls;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.ok(polls <= stoppedAt + 1, "stop() stops the timer");
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("condition not met in time");
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

describe("ops: store pings", () => {
  it("reports each store that failed or did not answer in time, and only those", async () => {
    const pings = new StorePings(
      {
        mongodb: async () => "pong",
        clickhouse: () => new Promise(() => {}),
        kafka: async () => {
          throw new Error("connect ECONNREFUSED to mongodb://user:hunter2@db:27017/");
        },
      },
      50,
    );
    const started = Date.now();
    const readiness = await pings.check();
    assert.ok(Date.now() - started < 1_000, "bounded by the timeout");
    assert.deepEqual(readiness, {
      ready: false,
      reasons: [
        "clickhouse did not answer within 50 ms",
        "kafka failed: connect ECONNREFUSED to mongodb://user:***@db:27017/",
      ],
    });
  });

  it("does not ping a store again while its previous ping is outstanding; answers again once it answers", async () => {
    let calls = 0;
    let answer: (() => void) | undefined;
    const pings = new StorePings(
      {
        mongodb: () => {
          calls++;
          return new Promise<void>((resolve) => {
            answer = resolve;
          });
        },
      },
      20,
    );
    assert.deepEqual((await pings.check()).reasons, ["mongodb did not answer within 20 ms"]);
    assert.deepEqual((await pings.check()).reasons, ["mongodb did not answer within 20 ms"]);
    assert.equal(calls, 1);
    answer!();
    await new Promise((resolve) => setImmediate(resolve));
    const next = pings.check();
    answer!();
    assert.deepEqual(await next, { ready: true, reasons: [] });
    assert.equal(calls, 2);
  });

  it("combineReadiness: ready only when every part is, with every reason", () => {
    assert.deepEqual(combineReadiness({ ready: true, reasons: [] }, { ready: true, reasons: [] }), {
      ready: true,
      reasons: [],
    });
    assert.deepEqual(
      combineReadiness({ ready: false, reasons: ["no partitions"] }, { ready: false, reasons: ["mongodb"] }),
      { ready: false, reasons: ["no partitions", "mongodb"] },
    );
  });
});

describe("ops: configuration and helpers", () => {
  it("AGENTMETER_METRICS_PORT and _HOST: defaults, 0 accepted, bad values refused with the variable", () => {
    const defaults = loadConfig({});
    assert.equal(defaults.AGENTMETER_METRICS_PORT, 9464);
    assert.equal(defaults.AGENTMETER_METRICS_HOST, "0.0.0.0");
    assert.equal(loadConfig({ AGENTMETER_METRICS_PORT: "0" }).AGENTMETER_METRICS_PORT, 0);
    assert.equal(loadConfig({ AGENTMETER_METRICS_HOST: "::" }).AGENTMETER_METRICS_HOST, "::");
    assert.equal(
      loadConfig({ AGENTMETER_METRICS_HOST: "pod-1.local" }).AGENTMETER_METRICS_HOST,
      "pod-1.local",
    );
    for (const [name, value] of [
      ["AGENTMETER_METRICS_PORT", "65536"],
      ["AGENTMETER_METRICS_PORT", "-1"],
      ["AGENTMETER_METRICS_PORT", "http"],
      ["AGENTMETER_METRICS_HOST", "a b"],
      ["AGENTMETER_METRICS_HOST", "-host"],
    ] as const)
      assert.throws(() => loadConfig({ [name]: value }), new RegExp(`config: ${name}=`), `${name}=${value}`);
  });

  it("storeOfError: by the client that raised it", () => {
    class MongoNetworkError extends Error {}
    class KafkaJSConnectionError extends Error {}
    class ClickHouseError extends Error {}
    assert.equal(storeOfError(new MongoNetworkError("x")), "mongodb");
    assert.equal(storeOfError(new KafkaJSConnectionError("x")), "kafka");
    assert.equal(storeOfError(new ClickHouseError("x")), "clickhouse");
    assert.equal(storeOfError(new Error("x")), "other");
    assert.equal(storeOfError("x"), "other");
  });

  it("seriesNames lists every metric, with a histogram's _bucket, _sum and _count", () => {
    const names = new ProcessorMetrics().seriesNames();
    for (const name of [
      "agentmeter_records_consumed_total",
      "agentmeter_write_behind_cycle_duration_seconds_bucket",
      "agentmeter_write_behind_cycle_duration_seconds_count",
      "process_cpu_seconds_total",
    ])
      assert.ok(names.includes(name), name);
    assert.ok(!names.includes("agentmeter_pending_records_bound"), "bounds only when given");
  });
});

describe("ops: dashboard, alert rules and the operations page against the metrics", () => {
  const root = new URL("../../", import.meta.url).pathname;
  const series = new Set(new ProcessorMetrics({ maxPendingRecords: 1, maxStoreLagSeconds: 1 }).seriesNames());
  const metricNames = (text: string) => [
    ...new Set([...text.matchAll(/\b(?:agentmeter|process|nodejs)_[a-z0-9_]+\b/g)].map((match) => match[0])),
  ];
  const dashboard = JSON.parse(readFileSync(join(root, "deploy/grafana/agentmeter.json"), "utf8")) as {
    panels: Array<{
      id: number;
      type: string;
      title: string;
      datasource?: { type: string };
      targets?: Array<{ expr?: string; rawSql?: string; datasource: { type: string } }>;
    }>;
    templating: { list: Array<{ definition?: string }> };
  };
  const alerts = readFileSync(join(root, "deploy/prometheus/alerts.yml"), "utf8");

  it("the dashboard parses, and every metric its Prometheus queries use exists", () => {
    const exprs = dashboard.panels.flatMap((panel) => panel.targets ?? []).flatMap((t) => t.expr ?? []);
    exprs.push(...dashboard.templating.list.flatMap((v) => v.definition ?? []));
    assert.ok(exprs.length >= 20, `${exprs.length} queries`);
    const used = metricNames(exprs.join("\n"));
    assert.deepEqual(
      used.filter((name) => !series.has(name)),
      [],
    );
    // Every processor metric is on the dashboard (the process ones are optional).
    const shown = new Set(used);
    const agentmeter = [...series].filter(
      (name) => name.startsWith("agentmeter_") && !/_(sum|count)$/.test(name),
    );
    // A histogram is shown through its buckets.
    assert.deepEqual(
      agentmeter.filter((name) => !shown.has(name) && !shown.has(`${name}_bucket`)),
      [],
    );
    const ids = dashboard.panels.map((panel) => panel.id);
    assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  });

  it("the analyst panels query ClickHouse through the plugin, on documented tables, in the time range", () => {
    const analytics = readFileSync(join(root, "docs/analytics.md"), "utf8");
    const sqlPanels = dashboard.panels.filter((panel) => panel.targets?.some((t) => t.rawSql !== undefined));
    const titles = sqlPanels.map((panel) => panel.title);
    for (const wanted of [
      /tokens per app per hour/i,
      /cost per app per hour/i,
      /70\/30 split per creator per day/i,
      /top agents by cost/i,
      /response time per agent/i,
    ])
      assert.ok(
        titles.some((title) => wanted.test(title)),
        String(wanted),
      );
    for (const panel of sqlPanels)
      for (const target of panel.targets!) {
        assert.equal(target.datasource.type, "grafana-clickhouse-datasource", panel.title);
        assert.match(target.rawSql!, /\$__timeFilter\((hour|occurred_at)\)/, panel.title);
        for (const [, table] of target.rawSql!.matchAll(/\$\{database\}\.(\w+)/g))
          assert.ok(analytics.includes(`\`${table}\``), `${panel.title}: ${table} is documented`);
      }
  });

  it("every metric the alert rules use exists; each rule has an expression, a severity and a summary", () => {
    const used = metricNames(alerts);
    assert.ok(used.length >= 8, used.join(","));
    assert.deepEqual(
      used.filter((name) => !series.has(name)),
      [],
    );
    const rules = alerts.split(/\n {6}- alert: /).slice(1);
    assert.ok(rules.length >= 8, `${rules.length} rules`);
    for (const rule of rules) {
      const name = rule.split("\n")[0]!;
      assert.match(rule, /\n {8}expr: /, name);
      assert.match(rule, /\n {10}severity: (critical|warning|info)\n/, name);
      assert.match(rule, /\n {10}summary: /, name);
    }
  });

  const promtool = [process.env.PROMTOOL_BIN, join(homedir(), ".cache/agentmeter/go/bin/promtool")]
    .concat((process.env.PATH ?? "").split(":").map((dir) => join(dir, "promtool")))
    .find((path) => path !== undefined && path !== "" && existsSync(path));
  const noPromtool =
    "no promtool (PROMTOOL_BIN, ~/.cache/agentmeter/go/bin, PATH; scripts/ci-tools.sh builds it)";
  it("promtool check rules accepts the alert rules", { skip: skipWithout(promtool, noPromtool) }, () => {
    const check = spawnSync(
      requireTool(promtool, noPromtool),
      ["check", "rules", join(root, "deploy/prometheus/alerts.yml")],
      {
        encoding: "utf8",
      },
    );
    assert.equal(check.status, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /SUCCESS: \d+ rules found/);
  });

  it("docs/operations.md explains every processor metric and every alert", () => {
    const doc = readFileSync(join(root, "docs/operations.md"), "utf8");
    const missing = [...series]
      .filter((name) => name.startsWith("agentmeter_") && !/_(bucket|sum|count)$/.test(name))
      .filter((name) => !doc.includes(`\`${name}\``));
    assert.deepEqual(missing, []);
    for (const [, alert] of alerts.matchAll(/- alert: (\w+)/g))
      assert.ok(doc.includes(`\`${alert}\``), alert);
  });
});

/**
 * The Grafana dashboard's ClickHouse panels: the database is a dashboard variable (CLICKHOUSE_DATABASE
 * need not be `agentmeter`), never named in the SQL.  */
describe("grafana dashboard: the ClickHouse database", () => {
  const root = new URL("../../", import.meta.url).pathname;
  const dashboard = JSON.parse(readFileSync(join(root, "deploy/grafana/agentmeter.json"), "utf8")) as {
    panels: Array<{ title: string; targets?: Array<{ rawSql?: string }> }>;
    templating: {
      list: Array<{ name: string; type: string; query?: unknown; current?: { value?: unknown } }>;
    };
  };
  const sql = dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).flatMap((target) =>
      target.rawSql === undefined ? [] : [[panel.title, target.rawSql]],
    ),
  );

  it("has a `database` variable defaulting to CLICKHOUSE_DATABASE's default", () => {
    const variable = dashboard.templating.list.find((v) => v.name === "database");
    assert.ok(variable, "templating has database");
    assert.ok(["textbox", "constant"].includes(variable.type), variable.type);
    const fallback = ConfigSchema.shape.CLICKHOUSE_DATABASE.parse(undefined);
    assert.equal(variable.query, fallback);
    assert.equal(variable.current?.value, fallback);
  });

  it("every table of every query is qualified by the database variable, and none names the database", () => {
    assert.ok(sql.length >= 7, `${sql.length} queries`);
    for (const [title, query] of sql) {
      assert.doesNotMatch(query!, /\bagentmeter\./, `${title} names the database`);
      const tables = [...query!.matchAll(/\b(?:FROM|(?<!ARRAY\s)JOIN)\s+(?!\()([\w${}.]+)/g)].map(
        (match) => match[1]!,
      );
      assert.ok(tables.length > 0, title);
      for (const table of tables) assert.match(table, /^\$\{database\}\.\w+$/, `${title}: ${table}`);
    }
  });
});
