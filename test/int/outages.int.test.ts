import assert from "node:assert/strict";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { childrenOf, processStartTime, readPidRecord, stopGroup } from "../../deploy/local/process.ts";
import { pidPath, type ServiceName } from "../../deploy/local/service.ts";
import { loadStackConfig, stackUp } from "../../deploy/local/stack.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { TestPipeline } from "../support/harness.ts";
import { configEnv } from "../support/pipeline.ts";
import { startProcessorProcess, stopProcess } from "../support/processes.ts";
import { getServices } from "../support/services.ts";
import { HangingProxy } from "../support/tcp-proxy.ts";

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
  // A killed PostgreSQL leaves its backends (their own process groups) to notice and exit; a new
  // postmaster cannot start while they still hold the old shared memory, so wait for them to go.
  const children = childrenOf(record.pid);
  await stopGroup(record.pid, signal, 10_000);
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline && children.some((child) => processStartTime(child) !== undefined))
    await sleep(100);
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

  it("given ClickHouse down, when a processor starts, then it waits for it (no exit) and, once ClickHouse is back, starts and bills everything exactly once", async () => {
    pipeline = await TestPipeline.create();
    const records = [
      ...generateWorkload({ seed: 57, records: 600, apps: 2, usersPerApp: 10, runId: "chstart" }),
    ];
    try {
      await pipeline.produce(records);
      await stopService("clickhouse", "SIGKILL");
      // A member joining during a store outage (the soak saw one exit 1 here, stop 23's CI)
      let settled: string | undefined;
      const starting = pipeline.startProcessor("fatal").then(
        () => (settled = "started"),
        (error: unknown) => {
          settled = `failed: ${(error as Error).message}`;
        },
      );
      await sleep(8_000);
      assert.equal(settled, undefined, "the start waits while ClickHouse is down");
      await stackUp({ log: () => undefined });
      await starting;
      assert.equal(settled, "started");
      await pipeline.caughtUp(120_000);
      await pipeline.assertStoresMatch(records);
    } finally {
      await pipeline.close();
      pipeline = undefined;
    }
  });

  it("given PostgreSQL killed under a running FerretDB, when the whole stack is brought up, then PostgreSQL is started again and FerretDB serves", async () => {
    await stopService("postgres", "SIGKILL");
    // FerretDB is alive but cannot be ready: stackUp must start the dead PostgreSQL rather than wait on it.
    const up = await stackUp({ log: () => undefined });
    const mongo = createMongo(up.mongoUri);
    try {
      await mongo.connect();
      const ping = await mongo.db("admin").command({ ping: 1 });
      assert.equal(ping.ok, 1, "FerretDB answers over the restarted PostgreSQL");
    } finally {
      await mongo.close();
    }
  });

  it("given records arriving, when the Kafka broker is restarted, then the processor rejoins and bills everything exactly once", async () => {
    pipeline = await TestPipeline.create();
    const records = [
      ...generateWorkload({ seed: 53, records: 1_200, apps: 3, usersPerApp: 10, runId: "kbounce" }),
    ];
    await pipeline.startProcessor("warn");
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

describe("a hung MongoDB connection: the operation timeout gets the processor out of it", {
  timeout: 5 * 60_000,
}, () => {
  it("given the processor's open connections stop answering for good mid-load, when AGENTMETER_MONGO_TIMEOUT_MS passes, then it drops them, writes on new ones and bills everything exactly once", async () => {
    const upstream = new URL(services.mongoUri);
    const proxy = new HangingProxy({ host: upstream.hostname, port: Number(upstream.port) });
    await proxy.listen();
    // Only the processor goes through the proxy: the test's own reads stay direct.
    const proxied = services.mongoUri.replace(upstream.host, `127.0.0.1:${proxy.port}`);
    const hung = await TestPipeline.create();
    const records = [
      ...generateWorkload({ seed: 57, records: 1_200, apps: 3, usersPerApp: 10, runId: "mhang" }),
    ];
    const processor = startProcessorProcess(`mhang-${hung.config.KAFKA_CLIENT_ID}`, {
      ...configEnv(hung.config),
      MONGODB_URI: proxied,
      AGENTMETER_MONGO_TIMEOUT_MS: "3000",
    });
    try {
      await processor.started;
      await hung.produce(records.slice(0, 400));
      await hung.caughtUp();
      const hungNow = proxy.hangOpenConnections();
      assert.ok(hungNow > 0, "the processor had MongoDB connections open");

      // Without a timeout these writes wait for the hung connections forever and nothing is committed.
      await hung.produce(records.slice(400));
      await hung.caughtUp(180_000);
      assert.ok(proxy.hungClosedByClient > 0, "the processor gave up on hung connections");
      await hung.assertStoresMatch(records);
    } finally {
      await stopProcess(processor, "SIGKILL");
      await hung.close();
      await proxy.close();
    }
  });
});
