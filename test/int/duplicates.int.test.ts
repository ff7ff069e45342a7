import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Processor } from "../../pipeline/processor/processor.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { TestPipeline } from "../support/harness.ts";

describe("duplicates: producing the same records a second time changes nothing", {
  timeout: 5 * 60_000,
}, () => {
  const records = [...generateWorkload({ seed: 5, records: 4_000, apps: 4, usersPerApp: 20, runId: "dup" })];
  let pipeline: TestPipeline;
  let processor: Processor;

  before(async () => {
    pipeline = await TestPipeline.create();
    processor = await pipeline.startProcessor();
  });

  after(async () => {
    await pipeline?.close();
  });

  it("given the records applied once, when all of them arrive again, then every figure is unchanged", async () => {
    await pipeline.produce(records);
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch(records);
    const duplicatesBefore = processor.totals.duplicates;

    await pipeline.produce(records);
    await pipeline.caughtUp();

    assert.equal(
      processor.totals.duplicates - duplicatesBefore,
      records.length,
      "every repeated record is recognised",
    );
    await pipeline.assertStoresMatch(records);
  });
});
