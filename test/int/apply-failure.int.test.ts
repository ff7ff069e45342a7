import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { redriveCommand } from "../../pipeline/cli/redrive.ts";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import type { Processor } from "../../pipeline/processor/processor.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { BUGGY_MODEL, billingWithBug } from "../support/billing-bug.ts";
import { TestPipeline } from "../support/harness.ts";
import { configEnv, eventually } from "../support/pipeline.ts";

/**
 * A bug in the billing core on valid records, on the real pipeline: the records it fails on are
 * dead-lettered (RECORD_APPLY_FAILED) and the partition bills everyone else, up to the budget
 * (AGENTMETER_APPLY_FAILURE_LIMIT); past it the partition waits for the fix and then bills on, nothing
 * lost; a re-drive after the fix bills the parked records once.
 */

/** A copy of a usage record under a new id whose every agent ran the model with the bug. */
function onBoom(record: InputRecordJson, id: string): InputRecordJson {
  assert.equal(record.type, "usage");
  const usage = record as Extract<InputRecordJson, { type: "usage" }>;
  const agents = Object.fromEntries(
    Object.entries(usage.agent_usage).map(([name, agent]) => [name, { ...agent, model: BUGGY_MODEL }]),
  );
  return { ...usage, record_id: id, agent_usage: agents };
}

describe("a billing core that fails on valid records: parked within a budget, nothing lost", {
  timeout: 6 * 60_000,
}, () => {
  const failing = { on: true };
  const records = [...generateWorkload({ seed: 43, records: 900, apps: 2, usersPerApp: 6, runId: "bug" })];
  const usage = records.filter((record) => record.type === "usage");
  // Copies of real usage records, on the model with the bug.
  const [a, b, c, d] = [usage.at(-1)!, usage.at(-2)!, usage.at(-3)!, usage.at(-4)!].map((record, i) =>
    onBoom(record, `boom-${i}`),
  );
  const first = records.slice(0, 600);
  const second = records.slice(600);
  let pipeline: TestPipeline;
  let processor: Processor;
  const saved = { ...process.env };

  before(async () => {
    pipeline = await TestPipeline.create({
      env: { AGENTMETER_APPLY_FAILURE_LIMIT: "3" },
      billing: billingWithBug(parseBillingConfig({}), failing),
    });
    Object.assign(process.env, configEnv(pipeline.config));
    processor = await pipeline.startProcessor("fatal");
  });

  after(async () => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    await pipeline?.close();
  });

  it("given records the core fails on, then they are dead-lettered within the budget, past it the partition waits for the fix, and a re-drive bills them once", async () => {
    await pipeline.produce([...first.slice(0, 300), a!, ...first.slice(300), b!]);
    await pipeline.caughtUp();
    assert.equal(processor.totals.applyFailed, 2, "both parked as RECORD_APPLY_FAILED");
    assert.equal(processor.totals.deadLettered, 2);
    await pipeline.assertStoresMatch(first);

    // The third is parked; the fourth finds the budget spent: its partition waits, the others go on.
    await pipeline.produce([c!, d!, ...second]);
    await eventually("the third parked", async () => (processor.totals.applyFailed === 3 ? true : undefined));
    await assert.rejects(pipeline.caughtUp(4_000), "the partition of the fourth waits for a fix");
    assert.equal(processor.totals.deadLettered, 3, "nothing more dead-lettered past the budget");

    // The fix is deployed: the waiting batch is retried and bills, the fourth record included.
    failing.on = false;
    await pipeline.caughtUp();
    assert.equal(processor.totals.applyFailed, 3);
    await pipeline.assertStoresMatch([...first, d!, ...second]);

    // The parked three, re-driven: billed once each, after everything billed meanwhile.
    let out = "";
    const code = await redriveCommand.run(["--reason", "RECORD_APPLY_FAILED"], {
      stdin: process.stdin,
      stdout: { write: (text: string) => (out += text) },
      stderr: { write: () => true },
    });
    assert.equal(code, 0);
    assert.match(out, /Re-drove 3 of 3 dead letters/);
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch([...first, d!, ...second, a!, b!, c!]);
  });

  it("given a record an earlier owner's flush stored in part, when the core fails on it, then it is not dead-lettered (a re-drive would bill it twice) but retried until the fix", async () => {
    const fixed = { on: true };
    const own = await TestPipeline.create({ billing: billingWithBug(parseBillingConfig({}), fixed) });
    try {
      const started = await own.startProcessor("fatal");
      const base = records.slice(0, 200);
      await own.produce(base);
      await own.caughtUp();
      // What a flush cut short leaves: a usage row stored past the record, its account not written.
      const victim = onBoom(usage[5]!, "boom-partly");
      const partition = partitionForKey(accountKeyOf(victim), own.config.AGENTMETER_PARTITIONS);
      const clickhouse = clickHouseFor(own.config);
      const table = `${quoteIdent(own.config.CLICKHOUSE_DATABASE)}.usage_events`;
      try {
        await clickhouse.insert({
          table,
          values: [
            {
              topic: own.topic,
              partition,
              offset: "1000000",
              record_id: "stored-in-part",
              occurred_at: victim.occurred_at,
            },
          ],
          format: "JSONEachRow",
        });
        await own.produce([victim]);
        await assert.rejects(own.caughtUp(8_000), "its partition waits");
        assert.equal(started.totals.deadLettered, 0, "nothing dead-lettered");
        assert.equal(started.totals.applyFailed, 0);
        // Every retry is counted as store "other" (AgentmeterStoreFailing), not only the first from memory.
        const retries = async () =>
          (await started.metrics.registry.getSingleMetric("agentmeter_store_retries_total")?.get())?.values
            .filter((value) => value.labels.store === "other")
            .reduce((sum, value) => sum + value.value, 0) ?? 0;
        const before = await retries();
        await eventually(
          "another retry counted",
          async () => ((await retries()) > before ? true : undefined),
          20_000,
        );
        // The fix: the row that stood for the earlier flush goes, the core bills again.
        await clickhouse.command({
          query: `ALTER TABLE ${table} DELETE WHERE record_id = 'stored-in-part'`,
          clickhouse_settings: { mutations_sync: "1" },
        });
      } finally {
        await clickhouse.close();
      }
      fixed.on = false;
      await own.caughtUp();
      await own.assertStoresMatch([...base, victim]);
    } finally {
      await own.close();
    }
  });
});
