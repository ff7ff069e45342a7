import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { readPidRecord, stopGroup } from "../../deploy/local/process.ts";
import { pidPath, type ServiceName } from "../../deploy/local/service.ts";
import { loadStackConfig, stackUp } from "../../deploy/local/stack.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { TestPipeline } from "../support/harness.ts";
import { getServices } from "../support/services.ts";

/**
 * Whole servers going away under a running processor: the MongoDB-protocol server killed for a minute
 * (account loads and index creation meet it too, not only the flush), and the Kafka broker restarted.
 * These stop real processes of the local stack, so they need it: with servers from the environment or
 * from testcontainers they are skipped, saying why.
 */
const services = await getServices();
const local = services.source === "local";
const reason = local
  ? undefined
  : `needs the local stack to stop its servers (services are ${services.source})`;

async function stopService(name: ServiceName, signal: NodeJS.Signals): Promise<void> {
  const record = await readPidRecord(pidPath(loadStackConfig(), name));
  assert.ok(record !== undefined, `${name} is running under the local stack`);
  await stopGroup(record.pid, signal, 10_000);
}

describe("outages: a store or the broker going away loses nothing and counts nothing twice", {
  timeout: 8 * 60_000,
  skip: reason,
}, () => {
  let pipeline: TestPipeline | undefined;

  after(async () => {
    await pipeline?.close().catch(() => undefined);
    // Leave the stack as the next test file expects it, whatever happened here.
    await stackUp({ log: () => undefined });
  });

  it("given records arriving, when FerretDB is killed for 60 s and restarted, then the processor waits (never crashing the group) and bills everything exactly once", async () => {
    pipeline = await TestPipeline.create();
    const records = [
      ...generateWorkload({ seed: 51, records: 1_200, apps: 3, usersPerApp: 10, runId: "mdown" }),
    ];
    try {
      const processor = await pipeline.startProcessor("fatal");
      await pipeline.produce(records.slice(0, 400));
      await pipeline.caughtUp();
      const consumedBefore = processor.totals.consumed;

      await stopService("ferretdb", "SIGKILL");
      // New accounts in these records: their loads meet the outage, not only the flush.
      await pipeline.produce(records.slice(400));
      await sleep(60_000);
      assert.ok((await pipeline.lag()) > 0n, "nothing was committed while MongoDB was down");
      assert.equal(processor.totals.consumed, consumedBefore, "no batch was counted done during the outage");
      await stackUp({ log: () => undefined });

      await pipeline.caughtUp(180_000);
      await pipeline.assertStoresMatch(records);
    } finally {
      await pipeline.close();
      pipeline = undefined;
    }
  });

  it("given records arriving, when the Kafka broker is restarted, then the processor rejoins and bills everything exactly once", async () => {
    pipeline = await TestPipeline.create();
    const records = [
      ...generateWorkload({ seed: 53, records: 1_200, apps: 3, usersPerApp: 10, runId: "kbounce" }),
    ];
    await pipeline.startProcessor("fatal");
    await pipeline.produce(records.slice(0, 600));
    // Clients made before the restart are not trusted after it: the next calls connect new ones.
    await pipeline.releaseClients();

    await stopService("kafka", "SIGTERM");
    await sleep(3_000);
    await stackUp({ log: () => undefined });

    await pipeline.produce(records.slice(600));
    await pipeline.caughtUp(180_000);
    await pipeline.assertStoresMatch(records);
    await pipeline.close();
    pipeline = undefined;
  });
});
