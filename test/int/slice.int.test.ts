import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Difference } from "../../pipeline/audit/diff.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { expectedStores } from "../support/expected.ts";
import { TestPipeline } from "../support/harness.ts";
import { describeDifference } from "../support/verify.ts";

describe("walking skeleton: usage produced to Kafka lands in MongoDB balances and ClickHouse rows", () => {
  const records = [...generateWorkload({ seed: 7, records: 600, apps: 3, usersPerApp: 8, runId: "slice" })];
  let pipeline: TestPipeline;
  let differences: Difference[];
  const of = (store: string) =>
    differences.filter((difference) => difference.store.startsWith(store)).map(describeDifference);

  before(async () => {
    pipeline = await TestPipeline.create();
    await pipeline.startProcessor();
    // Given a producer that writes each account's records keyed by account
    await pipeline.produce(records);
    await pipeline.caughtUp();
    differences = await pipeline.differences(records);
  });

  after(async () => {
    await pipeline?.close();
  });

  it("then every account document equals what the billing core computes from the same records", () => {
    const accounts = Object.keys(expectedStores(records, pipeline.billing).state.accounts);
    assert.ok(accounts.length > 20, "the workload should touch many accounts");
    assert.deepEqual(of("mongodb.accounts"), []);
  });

  it("then the revenue ledgers of each app sum to its end users' creator shares and platform fees", () => {
    assert.deepEqual(of("mongodb.revenue"), []);
  });

  it("then ClickHouse holds one row per usage record with the same billed totals", () => {
    assert.deepEqual(of("clickhouse."), []);
  });
});
