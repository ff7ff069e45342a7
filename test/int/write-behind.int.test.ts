import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { readPidRecord } from "../../deploy/local/process.ts";
import { pidPath } from "../../deploy/local/service.ts";
import { loadStackConfig, stackUp } from "../../deploy/local/stack.ts";
import { HealthServer } from "../../pipeline/ops/health-server.ts";
import { STOP_BUDGET_MS } from "../../pipeline/processor/processor.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";
import { getServices } from "../support/services.ts";

/**
 * Budget decisions do not wait on MongoDB: with the MongoDB-protocol server stalled (SIGSTOP, the hung
 * server that only timeouts notice), budget states keep coming for the accounts in use until the
 * store-lag bound, fetching then stops, nothing is committed, and once the server continues every figure
 * is exact. Needs the local stack (it stops a real process).
 */
const services = await getServices();
const reason =
  services.source === "local"
    ? undefined
    : `needs the local stack to stall its server (services are ${services.source})`;

const STALL_MS = 30_000;
const LAG_BOUND_MS = 8_000;
const RATE_PER_S = 100;
const BAD = 5;

async function ferretPid(): Promise<number> {
  const record = await readPidRecord(pidPath(loadStackConfig(), "ferretdb"));
  assert.ok(record !== undefined, "ferretdb is running under the local stack");
  return record.pid;
}

describe("write-behind: MongoDB stalled under a steady load", { timeout: 10 * 60_000, skip: reason }, () => {
  let pipeline: TestPipeline | undefined;
  let health: HealthServer | undefined;
  let stalled: number | undefined;

  after(async () => {
    if (stalled !== undefined) process.kill(stalled, "SIGCONT");
    await pipeline?.close().catch(() => undefined);
    await health?.close();
    await stackUp({ log: () => undefined });
  });

  it("publishes budget states while MongoDB is stopped, holds fetching at the lag bound, and ends exact", async () => {
    pipeline = await TestPipeline.create({ env: { AGENTMETER_MAX_STORE_LAG_MS: String(LAG_BOUND_MS) } });
    const { config } = pipeline;
    const records = [
      ...generateWorkload({ seed: 77, records: 4_600, apps: 2, usersPerApp: 6, runId: "stall" }),
    ];
    const warm = records.slice(0, 1_000);
    const warmKeys = new Set(warm.map((record) => accountKeyOf(record)));
    // During the stall only accounts already in memory: a new one would need a load from the stalled store.
    const steady = records.slice(1_000).filter((record) => warmKeys.has(accountKeyOf(record)));
    const running = await pipeline.startProcessor("fatal");
    health = new HealthServer({
      metrics: running.metrics,
      liveness: () => running.liveness(),
      readiness: () => running.readiness(),
    });
    const { port } = await health.start(0, "127.0.0.1");
    const get = (path: string) => fetch(`http://127.0.0.1:${port}${path}`);
    /** The metric's value, summed over its labelled series; NaN when it is not served. */
    const counter = async (name: string): Promise<number> => {
      const text = await (await get("/metrics")).text();
      const lines = text.split("\n").filter((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
      return lines.length === 0 ? Number.NaN : lines.reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
    };
    /** The largest value among the metric's labelled series; NaN when it is not served. */
    const gaugeMax = async (name: string): Promise<number> => {
      const text = await (await get("/metrics")).text();
      const values = text
        .split("\n")
        .filter((l) => l.startsWith(`${name}{`))
        .map((l) => Number(l.split(" ").pop()));
      return values.length === 0 ? Number.NaN : Math.max(...values);
    };
    const states = pipeline.kafka().consumer({ groupId: `${config.AGENTMETER_GROUP_ID}.states` });
    const stateTimes: number[] = [];
    try {
      await pipeline.produce(warm);
      // A few records that are dead-lettered: the metrics must count them by reason, once.
      await (await pipeline.producer()).send({
        topic: config.AGENTMETER_INPUT_TOPIC,
        acks: -1,
        messages: Array.from({ length: BAD }, (_, i) => ({ key: `junk-${i}`, value: "{not json" })),
      });
      await pipeline.caughtUp();
      assert.equal((await get("/readyz")).status, 200, "ready: in the group, both stores answer");
      assert.equal((await get("/healthz")).status, 200);
      assert.equal(await counter("agentmeter_records_consumed_total"), warm.length + BAD);
      assert.equal(await counter("agentmeter_records_dead_lettered_total"), BAD);
      await states.connect();
      await states.subscribe({ topic: config.AGENTMETER_STATE_TOPIC, fromBeginning: false });
      await states.run({
        eachMessage: async () => {
          stateTimes.push(Date.now());
        },
      });
      await sleep(3_000); // the state consumer has its partitions

      const pid = await ferretPid();
      process.kill(pid, "SIGSTOP");
      stalled = pid;
      const stallStart = Date.now();
      let sent = 0;
      const perTick = RATE_PER_S / 10;
      while (Date.now() - stallStart < STALL_MS && sent < steady.length) {
        await pipeline.produce(steady.slice(sent, sent + perTick));
        sent += Math.min(perTick, steady.length - sent);
        await sleep(100);
      }
      const lagDuringStall = await pipeline.lag();
      // The store lag keeps growing with the stall: it is not frozen where the partition stopped fetching.
      const storeLag = await gaugeMax("agentmeter_store_lag_seconds");
      assert.ok(storeLag * 1000 > STALL_MS - 5_000, `store lag ${storeLag} s after a ${STALL_MS} ms stall`);
      const readyDuringStall = await get("/readyz");
      const reasons = (await readyDuringStall.json()) as { reasons: string[] };
      assert.equal(readyDuringStall.status, 503, "not ready while MongoDB does not answer");
      assert.ok(
        reasons.reasons.some((reason) => reason.includes("mongodb")),
        JSON.stringify(reasons),
      );
      assert.equal((await get("/healthz")).status, 200, "alive: the loop heartbeats while it waits");
      process.kill(pid, "SIGCONT");
      stalled = undefined;
      const stallEnd = Date.now();

      const early = stateTimes.filter((t) => t >= stallStart && t < stallStart + LAG_BOUND_MS - 2_000).length;
      const late = stateTimes.filter((t) => t >= stallStart + LAG_BOUND_MS + 4_000 && t < stallEnd).length;
      process.stdout.write(
        `# stall: ${sent} records produced in ${stallEnd - stallStart} ms; budget states in the first ${(LAG_BOUND_MS - 2_000) / 1000} s: ${early}; after the bound: ${late}; lag ${lagDuringStall}\n`,
      );
      assert.ok(early > 50, `budget states kept flowing while MongoDB was stopped (${early})`);
      assert.equal(late, 0, "past the lag bound the partitions stopped fetching");
      assert.ok(lagDuringStall >= BigInt(sent), "nothing produced during the stall was committed");

      await pipeline.caughtUp(180_000);
      await pipeline.assertStoresMatch([...warm, ...steady.slice(0, sent)]);
      // The counters are exact: every record counted once, when durable, whatever the stall did.
      assert.equal(await counter("agentmeter_records_consumed_total"), warm.length + BAD + sent);
      assert.equal(
        await counter("agentmeter_records_consumed_total"),
        (await counter("agentmeter_records_applied_total")) +
          (await counter("agentmeter_records_replay_skipped_total")) +
          (await counter("agentmeter_records_dead_lettered_total")),
      );
      await eventually("ready again", async () => ((await get("/readyz")).status === 200 ? true : undefined));
    } finally {
      await states.disconnect().catch(() => undefined);
    }
  });

  it("stopped with SIGTERM while MongoDB is stalled and a partition waits at the lag bound: exits within its stop budget, and the next processor ends exact", async () => {
    await pipeline?.close();
    pipeline = await TestPipeline.create({ env: { AGENTMETER_MAX_STORE_LAG_MS: String(LAG_BOUND_MS) } });
    const records = [
      ...generateWorkload({ seed: 78, records: 2_000, apps: 2, usersPerApp: 6, runId: "stop-stalled" }),
    ];
    const warm = records.slice(0, 500);
    const warmKeys = new Set(warm.map((record) => accountKeyOf(record)));
    const steady = records.slice(500).filter((record) => warmKeys.has(accountKeyOf(record)));
    const first = pipeline.spawnProcessor("stop-stalled");
    await first.started;
    await pipeline.produce(warm);
    await pipeline.caughtUp();

    const pid = await ferretPid();
    process.kill(pid, "SIGSTOP");
    stalled = pid;
    // Past the lag bound: the partitions wait for stores that do not answer.
    const stallStart = Date.now();
    let sent = 0;
    while (Date.now() - stallStart < LAG_BOUND_MS + 4_000 && sent < steady.length) {
      await pipeline.produce(steady.slice(sent, sent + 10));
      sent += Math.min(10, steady.length - sent);
      await sleep(100);
    }
    const termAt = Date.now();
    first.child.kill("SIGTERM");
    const exit = await Promise.race([
      first.exited,
      sleep(STOP_BUDGET_MS + 10_000).then(() => "timeout" as const),
    ]);
    const took = Date.now() - termAt;
    process.stdout.write(
      `# SIGTERM with MongoDB stalled: exited after ${took} ms (budget ${STOP_BUDGET_MS} ms)\n`,
    );
    assert.notEqual(exit, "timeout", `still running ${STOP_BUDGET_MS + 10_000} ms after SIGTERM`);
    assert.deepEqual(exit, { code: 0, signal: null });
    process.kill(pid, "SIGCONT");
    stalled = undefined;

    // Nothing was lost or counted twice: what the stores did not take is fetched again.
    const second = pipeline.spawnProcessor("after-stop-stalled");
    await second.started;
    await pipeline.caughtUp(180_000);
    await pipeline.assertStoresMatch([...warm, ...steady.slice(0, sent)]);
  });
});
