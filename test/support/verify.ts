import assert from "node:assert/strict";
import type { Config } from "../../pipeline/config.ts";
import type { AccountState, BillingState } from "../../pipeline/core/index.ts";
import { createClickHouse, quoteIdent } from "../../sinks/clickhouse/client.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { COLLECTIONS, layoutNames, MongoLayout } from "../../sinks/mongo/layout.ts";
import { readAppRevenue } from "../../sinks/mongo/read.ts";
import { ledgerFigures } from "./expected.ts";

/** Differences between the stores and the billing core's figures; empty means exact agreement. */
export async function storeDifferences(
  config: Config,
  expected: BillingState,
  usageRecords: number,
): Promise<string[]> {
  const mongo = createMongo(config.MONGODB_URI);
  const clickhouse = createClickHouse({
    url: config.CLICKHOUSE_URL,
    username: config.CLICKHOUSE_USER,
    password: config.CLICKHOUSE_PASSWORD,
  });
  const differences: string[] = [];
  try {
    const layout = new MongoLayout(mongo, layoutNames(config));
    const accounts = Object.values(expected.accounts);
    const apps = [...new Set(accounts.filter((a) => a.level === "app_usage").map((a) => a.enterprise_id!))];
    const stored = new Map<string, AccountState>();
    for (const doc of await layout.platform().collection(COLLECTIONS.platform.users).find().toArray()) {
      stored.set(String(doc.account_key), doc as unknown as AccountState);
    }
    await Promise.all(
      apps.map(async (app) => {
        for (const doc of await layout.app(app).collection(COLLECTIONS.app.users).find().toArray()) {
          stored.set(String(doc.account_key), doc as unknown as AccountState);
        }
      }),
    );
    if (stored.size !== accounts.length)
      differences.push(`account documents: ${stored.size}, expected ${accounts.length}`);
    for (const account of accounts) {
      const doc = stored.get(account.account_key);
      if (doc === undefined) {
        differences.push(`${account.account_key}: no document`);
        continue;
      }
      try {
        assert.deepEqual(ledgerFigures(doc), ledgerFigures(account));
      } catch {
        differences.push(
          `${account.account_key}: stored ${JSON.stringify(ledgerFigures(doc), (_k, v) => (typeof v === "bigint" ? String(v) : v))} expected ${JSON.stringify(ledgerFigures(account), (_k, v) => (typeof v === "bigint" ? String(v) : v))}`,
        );
      }
    }
    for (const app of apps) {
      const revenue = await readAppRevenue(layout, app);
      const users = accounts.filter((a) => a.enterprise_id === app);
      const creator = users.reduce((t, a) => t + a.creator_share_micros, 0n);
      const fee = users.reduce((t, a) => t + a.platform_fee_micros, 0n);
      if (revenue.creator_share_micros !== creator || revenue.platform_fee_micros !== fee) {
        differences.push(
          `${app} revenue: creator ${revenue.creator_share_micros} fee ${revenue.platform_fee_micros}, expected ${creator} / ${fee}`,
        );
      }
    }
    // No FINAL on purpose: the sink must not insert a row twice at all, not merely collapse it later.
    const result = await clickhouse.query({
      query: `SELECT count() AS n, uniqExact(record_id) AS ids, toString(sum(billed_micros)) AS billed, toString(sum(creator_share_micros)) AS creator
              FROM ${quoteIdent(config.CLICKHOUSE_DATABASE)}.usage_events`,
      format: "JSONEachRow",
    });
    const [row] = await result.json<{ n: string; ids: string; billed: string; creator: string }>();
    const billed = accounts.reduce((t, a) => t + a.billed_micros, 0n);
    const creator = accounts.reduce((t, a) => t + a.creator_share_micros, 0n);
    if (Number(row?.n) !== usageRecords || Number(row?.ids) !== usageRecords) {
      differences.push(`clickhouse rows ${row?.n} (distinct ids ${row?.ids}), expected ${usageRecords}`);
    }
    if (BigInt(row?.billed ?? "0") !== billed || BigInt(row?.creator ?? "0") !== creator) {
      differences.push(
        `clickhouse billed ${row?.billed} creator ${row?.creator}, expected ${billed} / ${creator}`,
      );
    }
  } finally {
    await mongo.close();
    await clickhouse.close();
  }
  return differences;
}
