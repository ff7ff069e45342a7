import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { createLogger } from "../../pipeline/log.ts";
import { Processor } from "../../pipeline/processor/processor.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { expectedRun } from "../support/expected.ts";
import { connectProducer, isolatedConfig, produceRecords, testKafka } from "../support/pipeline.ts";
import { waitCaughtUp } from "../support/processes.ts";
import { storeDifferences } from "../support/verify.ts";

describe("duplicates: producing the same records a second time changes nothing", {
  timeout: 5 * 60_000,
}, () => {
  const billing = parseBillingConfig({});
  const records = [...generateWorkload({ seed: 5, records: 4_000, apps: 4, usersPerApp: 20, runId: "dup" })];
  const expected = expectedRun(records, billing);
  let config: Awaited<ReturnType<typeof isolatedConfig>>;
  let processor: Processor;
  let admin: ReturnType<ReturnType<typeof testKafka>["admin"]>;

  before(async () => {
    config = await isolatedConfig();
    processor = new Processor(config, billing, createLogger(config.LOG_LEVEL));
    await processor.start();
    admin = testKafka(config).admin();
    await admin.connect();
  });

  after(async () => {
    await processor?.stop();
    await admin?.disconnect();
  });

  it("given the records applied once, when all of them arrive again, then every figure is unchanged", async () => {
    const producer = await connectProducer(testKafka(config));
    await produceRecords(producer, config.AGENTMETER_INPUT_TOPIC, records as never);
    await waitCaughtUp(admin, config.AGENTMETER_GROUP_ID, config.AGENTMETER_INPUT_TOPIC, 120_000);
    assert.deepEqual(await storeDifferences(config, expected.state, expected.usageOutcomes), []);
    const duplicatesBefore = processor.totals.duplicates;

    await produceRecords(producer, config.AGENTMETER_INPUT_TOPIC, records as never);
    await producer.disconnect();
    await waitCaughtUp(admin, config.AGENTMETER_GROUP_ID, config.AGENTMETER_INPUT_TOPIC, 120_000);

    assert.equal(
      processor.totals.duplicates - duplicatesBefore,
      records.length,
      "every repeated record is recognised",
    );
    assert.deepEqual(await storeDifferences(config, expected.state, expected.usageOutcomes), []);
  });
});
