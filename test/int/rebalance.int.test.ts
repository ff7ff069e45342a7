import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { TestPipeline } from "../support/harness.ts";
import { stopProcess } from "../support/processes.ts";

describe("rebalance: instances join and leave the group mid-run", { timeout: 10 * 60_000 }, () => {
  const records = [
    ...generateWorkload({ seed: 13, records: 40_000, apps: 20, usersPerApp: 30, runId: "rebal" }),
  ];
  let pipeline: TestPipeline;

  before(async () => {
    // Small fetches and a small pending bound, so that the members hand partitions over between
    // many commits, not after one: write-behind commits a cycle at a time, and one cycle of
    // up to 10,000 records took a whole partition's share, so the leave came after the end (CI).
    pipeline = await TestPipeline.create({
      env: {
        AGENTMETER_SESSION_TIMEOUT_MS: "10000",
        AGENTMETER_FETCH_BYTES_PER_PARTITION: String(128 * 1024),
        AGENTMETER_MAX_PENDING_RECORDS: "500",
      },
    });
    await pipeline.produce(records);
  });

  after(async () => {
    await pipeline?.close();
  });

  it("given two instances, when a third joins and one leaves, then every figure equals the billing core's", async () => {
    const total = await pipeline.lag();
    const a = pipeline.spawnProcessor("rebal-a");
    const b = pipeline.spawnProcessor("rebal-b");
    await Promise.all([a.started, b.started]);
    // When a third instance joins while the first two are working ...
    while ((await pipeline.lag()) > (total * 3n) / 4n) await sleep(100);
    const c = pipeline.spawnProcessor("rebal-c");
    await c.started;
    // ... and one of the first two leaves gracefully while work remains
    while ((await pipeline.lag()) > total / 2n) await sleep(100);
    const lagAtLeave = await pipeline.lag();
    const left = await stopProcess(b, "SIGTERM");
    assert.equal(left.code, 0);
    await pipeline.caughtUp(5 * 60_000);
    for (const p of [a, c]) assert.equal((await stopProcess(p, "SIGTERM")).code, 0);

    assert.ok(lagAtLeave > 0n, "the instance must leave mid-run");
    await pipeline.assertStoresMatch(records);
  });
});
