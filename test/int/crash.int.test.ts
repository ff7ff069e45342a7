import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { generateWorkload, prng } from "../../pipeline/simulate/workload.ts";
import { expectedStores } from "../support/expected.ts";
import { TestPipeline } from "../support/harness.ts";
import { type ProcessorProcess, stopProcess } from "../support/processes.ts";

const RECORDS = Number(process.env.AGENTMETER_CRASH_RECORDS ?? 100_000);
const KILLS = 6;

describe("crash: the processor is SIGKILLed at random moments and restarted", {
  timeout: 20 * 60_000,
}, () => {
  // 40 apps x 30 end users + 20 creators: more than 1,000 accounts.
  const records = [
    ...generateWorkload({ seed: 11, records: RECORDS, apps: 40, usersPerApp: 30, runId: "crash" }),
  ];
  let pipeline: TestPipeline;
  const lagAtKill: bigint[] = [];
  let current: ProcessorProcess | undefined;

  before(async () => {
    // Fetches of 512 KiB (about 800 records a partition): many flushes between kills, so kills land at
    // every stage of one, and the lag moves in steps small enough to aim the kills at.
    // Decisions run ahead of the stores up to the pending bound: a small bound keeps the committed lag
    // moving in steps (and the bound itself under the kills), so the kills can be aimed mid-run.
    pipeline = await TestPipeline.create({
      env: {
        AGENTMETER_SESSION_TIMEOUT_MS: "10000",
        AGENTMETER_FETCH_BYTES_PER_PARTITION: String(512 * 1024),
        AGENTMETER_MAX_PENDING_RECORDS: "2000",
      },
    });
    // Given the whole workload on the topic, plus a tenth of it produced again (a producer's retries)
    await pipeline.produce(records);
    await pipeline.produce(records.slice(0, Math.floor(RECORDS / 10)));
  });

  after(async () => {
    await pipeline?.close();
  });

  it(`when it is killed ${KILLS} times mid-run, every figure still equals the billing core's`, async () => {
    const random = prng(2026);
    for (let kill = 0; kill < KILLS; kill++) {
      current = pipeline.spawnProcessor(`crash-${kill}`);
      // Let it join and do a random part of its share of what remains (so that the work cannot run out
      // before the last kill, however fast the processor), then kill it without warning a random while
      // later, wherever its next flush is.
      const before = await pipeline.lag();
      const share = before / BigInt(KILLS - kill + 1);
      const target = before - (share * BigInt(20 + Math.floor(random() * 80))) / 100n;
      const extraMs = Math.floor(random() * 1_500);
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        await sleep(100);
        const lag = await pipeline.lag();
        if (lag <= target || lag === 0n) break;
      }
      await sleep(extraMs);
      lagAtKill.push(await pipeline.lag());
      const exit = await stopProcess(current, "SIGKILL");
      assert.equal(exit.signal, "SIGKILL");
      current = undefined;
    }
    // Then a last run to the end, stopped gracefully.
    current = pipeline.spawnProcessor("crash-final");
    await current.started;
    await pipeline.caughtUp(10 * 60_000);
    const exit = await stopProcess(current, "SIGTERM");
    current = undefined;
    assert.equal(exit.code, 0, "SIGTERM drains, commits and exits 0");

    const accounts = Object.keys(expectedStores(records, pipeline.billing).state.accounts).length;
    const midRunKills = lagAtKill.filter((lag) => lag > 0n).length;
    console.log(
      `lag at each kill: ${lagAtKill.join(", ")} (records ${records.length}, accounts ${accounts})`,
    );
    assert.ok(
      midRunKills >= 5,
      `at least 5 kills must land mid-run, got ${midRunKills}: ${lagAtKill.join(", ")}`,
    );
    assert.ok(accounts >= 1_000);
    await pipeline.assertStoresMatch(records);
  });
});
