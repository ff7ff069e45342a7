import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { ensureTopics } from "../../pipeline/kafka.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { expectedRun } from "../support/expected.ts";
import {
  configEnv,
  connectProducer,
  isolatedConfig,
  produceRecords,
  testKafka,
} from "../support/pipeline.ts";
import {
  groupLag,
  type ProcessorProcess,
  startProcessorProcess,
  stopProcess,
  waitCaughtUp,
} from "../support/processes.ts";
import { storeDifferences } from "../support/verify.ts";

describe("rebalance: instances join and leave the group mid-run", { timeout: 10 * 60_000 }, () => {
  const billing = parseBillingConfig({});
  const records = [
    ...generateWorkload({ seed: 13, records: 40_000, apps: 20, usersPerApp: 30, runId: "rebal" }),
  ];
  const expected = expectedRun(records, billing);
  let config: Awaited<ReturnType<typeof isolatedConfig>>;
  let admin: ReturnType<ReturnType<typeof testKafka>["admin"]>;
  const running: ProcessorProcess[] = [];

  before(async () => {
    // Small fetches, so that the members hand partitions over between many flushes, not after one.
    config = await isolatedConfig({
      AGENTMETER_SESSION_TIMEOUT_MS: "10000",
      AGENTMETER_FETCH_BYTES_PER_PARTITION: String(128 * 1024),
    });
    admin = testKafka(config).admin();
    await admin.connect();
    await ensureTopics(admin, config);
    const producer = await connectProducer(testKafka(config));
    await produceRecords(producer, config.AGENTMETER_INPUT_TOPIC, records as never);
    await producer.disconnect();
  });

  after(async () => {
    await Promise.all(running.map((p) => stopProcess(p, "SIGKILL")));
    await admin?.disconnect();
  });

  it("given two instances, when a third joins and one leaves, then every figure equals the billing core's", async () => {
    const env = configEnv(config);
    const group = config.AGENTMETER_GROUP_ID;
    const topic = config.AGENTMETER_INPUT_TOPIC;
    const total = await groupLag(admin, group, topic);
    const a = startProcessorProcess(`rebal-${config.KAFKA_CLIENT_ID}-a`, env);
    const b = startProcessorProcess(`rebal-${config.KAFKA_CLIENT_ID}-b`, env);
    running.push(a, b);
    await Promise.all([a.started, b.started]);
    // When a third instance joins while the first two are working ...
    while ((await groupLag(admin, group, topic)) > (total * 3n) / 4n) await sleep(100);
    const c = startProcessorProcess(`rebal-${config.KAFKA_CLIENT_ID}-c`, env);
    running.push(c);
    await c.started;
    // ... and one of the first two leaves gracefully while work remains
    while ((await groupLag(admin, group, topic)) > total / 2n) await sleep(100);
    const lagAtLeave = await groupLag(admin, group, topic);
    const left = await stopProcess(b, "SIGTERM");
    assert.equal(left.code, 0);
    await waitCaughtUp(admin, group, topic, 5 * 60_000);
    for (const p of [a, c]) assert.equal((await stopProcess(p, "SIGTERM")).code, 0);
    running.length = 0;

    assert.ok(lagAtLeave > 0n, "the instance must leave mid-run");
    const differences = await storeDifferences(config, expected.state, expected.usageOutcomes);
    assert.deepEqual(differences.slice(0, 10), [], `${differences.length} differences`);
  });
});
