import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { ensureTopics } from "../../pipeline/kafka.ts";
import { generateWorkload, prng } from "../../pipeline/simulate/workload.ts";
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

const RECORDS = Number(process.env.AGENTMETER_CRASH_RECORDS ?? 100_000);
const KILLS = 6;

describe("crash: the processor is SIGKILLed at random moments and restarted", {
  timeout: 20 * 60_000,
}, () => {
  const billing = parseBillingConfig({});
  // 40 apps x 30 end users + 20 creators: more than 1,000 accounts.
  const records = [
    ...generateWorkload({ seed: 11, records: RECORDS, apps: 40, usersPerApp: 30, runId: "crash" }),
  ];
  const expected = expectedRun(records, billing);
  let config: Awaited<ReturnType<typeof isolatedConfig>>;
  const kafka = { admin: undefined as ReturnType<ReturnType<typeof testKafka>["admin"]> | undefined };
  const lagAtKill: bigint[] = [];
  let current: ProcessorProcess | undefined;

  before(async () => {
    // Fetches of 512 KiB (about 800 records a partition): many flushes between kills, so kills land at
    // every stage of one, and the lag moves in steps small enough to aim the kills at.
    config = await isolatedConfig({
      AGENTMETER_SESSION_TIMEOUT_MS: "10000",
      AGENTMETER_FETCH_BYTES_PER_PARTITION: String(512 * 1024),
    });
    const client = testKafka(config);
    kafka.admin = client.admin();
    await kafka.admin.connect();
    await ensureTopics(kafka.admin, config);
    const producer = await connectProducer(client);
    // Given the whole workload on the topic, plus a tenth of it produced again (a producer's retries)
    await produceRecords(producer, config.AGENTMETER_INPUT_TOPIC, records as never);
    await produceRecords(
      producer,
      config.AGENTMETER_INPUT_TOPIC,
      records.slice(0, Math.floor(RECORDS / 10)) as never,
    );
    await producer.disconnect();
  });

  after(async () => {
    if (current !== undefined) await stopProcess(current, "SIGKILL");
    await kafka.admin?.disconnect();
  });

  it(`when it is killed ${KILLS} times mid-run, every figure still equals the billing core's`, async () => {
    const env = configEnv(config);
    const random = prng(2026);
    const admin = kafka.admin!;
    const group = config.AGENTMETER_GROUP_ID;
    const topic = config.AGENTMETER_INPUT_TOPIC;
    for (let kill = 0; kill < KILLS; kill++) {
      current = startProcessorProcess(`crash-${config.KAFKA_CLIENT_ID}-${kill}`, env);
      // Let it join and do a random part of its share of what remains (so that the work cannot run out
      // before the last kill, however fast the processor), then kill it without warning a random while
      // later, wherever its next flush is.
      const before = await groupLag(admin, group, topic);
      const share = before / BigInt(KILLS - kill + 1);
      const target = before - (share * BigInt(20 + Math.floor(random() * 80))) / 100n;
      const extraMs = Math.floor(random() * 1_500);
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        await sleep(100);
        const lag = await groupLag(admin, group, topic);
        if (lag <= target || lag === 0n) break;
      }
      await sleep(extraMs);
      const lag = await groupLag(admin, group, topic);
      lagAtKill.push(lag);
      const exit = await stopProcess(current, "SIGKILL");
      assert.equal(exit.signal, "SIGKILL");
      current = undefined;
    }
    // Then a last run to the end, stopped gracefully.
    current = startProcessorProcess(`crash-${config.KAFKA_CLIENT_ID}-final`, env);
    await current.started;
    await waitCaughtUp(admin, group, topic, 10 * 60_000);
    const exit = await stopProcess(current, "SIGTERM");
    current = undefined;
    assert.equal(exit.code, 0, "SIGTERM drains, commits and exits 0");

    const midRunKills = lagAtKill.filter((lag) => lag > 0n).length;
    console.log(
      `lag at each kill: ${lagAtKill.join(", ")} (records ${records.length}, accounts ${Object.keys(expected.state.accounts).length})`,
    );
    assert.ok(
      midRunKills >= 5,
      `at least 5 kills must land mid-run, got ${midRunKills}: ${lagAtKill.join(", ")}`,
    );
    assert.ok(Object.keys(expected.state.accounts).length >= 1_000);
    const differences = await storeDifferences(config, expected.state, expected.usageOutcomes);
    assert.deepEqual(differences.slice(0, 10), [], `${differences.length} differences`);
  });
});
