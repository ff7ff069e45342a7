import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { createLogger } from "../../pipeline/log.ts";
import { Processor } from "../../pipeline/processor/processor.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { createClickHouse } from "../../sinks/clickhouse/client.ts";
import { accountAddress } from "../../sinks/mongo/accounts.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { COLLECTIONS, layoutNames, MongoLayout } from "../../sinks/mongo/layout.ts";
import { readAccount } from "../../sinks/mongo/read.ts";
import { expectedState, ledgerFigures } from "../support/expected.ts";
import {
  connectProducer,
  eventually,
  isolatedConfig,
  produceRecords,
  testKafka,
} from "../support/pipeline.ts";

describe("walking skeleton: usage produced to Kafka lands in MongoDB balances and ClickHouse rows", () => {
  const billing = parseBillingConfig({});
  const records = [...generateWorkload({ seed: 7, records: 600, apps: 3, usersPerApp: 8, runId: "slice" })];
  const expected = expectedState(records, billing);
  let config: Awaited<ReturnType<typeof isolatedConfig>>;
  let processor: Processor;
  const mongo = { client: undefined as ReturnType<typeof createMongo> | undefined };

  before(async () => {
    config = await isolatedConfig();
    processor = new Processor(config, billing, createLogger(config.LOG_LEVEL));
    await processor.start();
    const producer = await connectProducer(testKafka(config));
    // Given a producer that writes each account's records keyed by account
    await produceRecords(producer, config.AGENTMETER_INPUT_TOPIC, records as never);
    await producer.disconnect();
    mongo.client = createMongo(config.MONGODB_URI);
  });

  after(async () => {
    await processor?.stop();
    await mongo.client?.close();
  });

  it("then every account document equals what the billing core computes from the same records", async () => {
    const client = mongo.client!;
    const accounts = Object.values(expected.accounts);
    assert.ok(accounts.length > 20, "the workload should touch many accounts");
    await eventually("all account documents at their final figures", async () => {
      for (const account of accounts) {
        const doc = await readAccount(new MongoLayout(client, layoutNames(config)), accountAddress(account));
        if (doc === null) return undefined;
        try {
          assert.deepEqual(ledgerFigures(doc as never), ledgerFigures(account));
        } catch {
          return undefined;
        }
      }
      return true;
    });
  });

  it("then the revenue ledgers of each app sum to its end users' creator shares and platform fees", async () => {
    const client = mongo.client!;
    const byApp = new Map<string, { creator: bigint; fee: bigint }>();
    for (const account of Object.values(expected.accounts)) {
      if (account.level !== "app_usage") continue;
      const sums = byApp.get(account.enterprise_id!) ?? { creator: 0n, fee: 0n };
      sums.creator += account.creator_share_micros;
      sums.fee += account.platform_fee_micros;
      byApp.set(account.enterprise_id!, sums);
    }
    for (const [enterpriseId, sums] of byApp) {
      const ledgers = await client
        .db(config.AGENTMETER_APP_DB_PREFIX + enterpriseId)
        .collection(COLLECTIONS.app.revenue)
        .find()
        .toArray();
      const creator = ledgers.reduce((total, doc) => total + BigInt(doc.creator_share_micros), 0n);
      const fee = ledgers.reduce((total, doc) => total + BigInt(doc.platform_fee_micros), 0n);
      assert.equal(creator, sums.creator, `creator earnings of ${enterpriseId}`);
      assert.equal(fee, sums.fee, `platform fees of ${enterpriseId}`);
    }
  });

  it("then ClickHouse holds one row per usage record with the same billed totals", async () => {
    const clickhouse = createClickHouse({
      url: config.CLICKHOUSE_URL,
      username: config.CLICKHOUSE_USER,
      password: config.CLICKHOUSE_PASSWORD,
    });
    try {
      const usageCount = records.filter((record) => record.type === "usage").length;
      const billed = Object.values(expected.accounts).reduce(
        (total, account) => total + account.billed_micros,
        0n,
      );
      const row = await eventually("all usage rows in ClickHouse", async () => {
        const result = await clickhouse.query({
          query: `SELECT count() AS n, toString(sum(billed_micros)) AS billed, uniqExact(record_id) AS ids FROM ${config.CLICKHOUSE_DATABASE}.usage_events`,
          format: "JSONEachRow",
        });
        const [first] = await result.json<{ n: string; billed: string; ids: string }>();
        return first !== undefined && Number(first.n) >= usageCount ? first : undefined;
      });
      assert.equal(Number(row.n), usageCount);
      assert.equal(Number(row.ids), usageCount);
      assert.equal(BigInt(row.billed), billed);
    } finally {
      await clickhouse.close();
    }
  });
});
