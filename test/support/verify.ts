/**
 * Whether the stores hold what the billing core computes, judged by the audit's own readers and diff
 * (pipeline/audit), so a test and `agentmeter audit` cannot disagree on what "exact" means. Three checks
 * the audit does not make are added here, as differences of the same shape:
 *   - rows written twice: the audit reads usage_events and adjustments with FINAL, which hides a row
 *     inserted twice; the sink must not insert one twice at all (count and distinct ids without FINAL);
 *   - ClickHouse rows per account: the audit sums per app and level, which a row booked to the wrong
 *     account of the same app would pass;
 *   - each account document's own `account_key` field: the audit keys documents by where they are found.
 */
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type ActualStores,
  type Difference,
  diffStores,
  sortDifferences,
} from "../../pipeline/audit/diff.ts";
import {
  CLICKHOUSE_SOURCES,
  type ClickHouseSource,
  type RowTable,
  readAdjustmentTotals,
  readUsageTotals,
} from "../../pipeline/audit/read-clickhouse.ts";
import { type MongoActual, readMongo } from "../../pipeline/audit/read-mongo.ts";
import type { Expected } from "../../pipeline/audit/recompute.ts";
import type { Config } from "../../pipeline/config.ts";
import type { AccountState } from "../../pipeline/core/index.ts";
import { clickHouseFor, mongoLayoutFor } from "../../pipeline/runtime/clients.ts";
import { type ClickHouseClient, quoteIdent } from "../../sinks/clickhouse/client.ts";
import { createMongo } from "../../sinks/mongo/client.ts";

const HARNESS = {
  explained_by: "checked by the test harness (not by the audit)",
  record_ids: [],
  record_ids_total: 0,
};

/** Every difference between the stores and `expected`; empty means exact agreement. */
export async function storeDifferences(config: Config, expected: Expected): Promise<Difference[]> {
  const mongo = createMongo(config.MONGODB_URI);
  const clickhouse = clickHouseFor(config);
  try {
    const apps = new Set<string>();
    for (const account of Object.values(expected.state.accounts))
      if (account.enterprise_id !== null) apps.add(account.enterprise_id);
    const actual: ActualStores & { mongo: MongoActual } = {
      mongo: await readMongo(mongo, mongoLayoutFor(mongo, config), apps),
      clickhouse: {},
      adjustments: await readAdjustmentTotals(clickhouse, config.CLICKHOUSE_DATABASE),
    };
    for (const source of Object.keys(CLICKHOUSE_SOURCES) as ClickHouseSource[]) {
      actual.clickhouse[source] = await readUsageTotals(clickhouse, config.CLICKHOUSE_DATABASE, source);
    }
    return sortDifferences([
      ...diffStores(expected, actual),
      ...accountKeyFields(actual.mongo),
      ...(await rowsWrittenTwice(clickhouse, config.CLICKHOUSE_DATABASE, "usage_events", expected)),
      ...(await rowsWrittenTwice(clickhouse, config.CLICKHOUSE_DATABASE, "adjustments", expected)),
      ...(await rowsPerAccount(clickhouse, config.CLICKHOUSE_DATABASE, expected)),
    ]);
  } finally {
    await mongo.close();
    await clickhouse.close();
  }
}

const ROLLUPS = new Set<Difference["store"]>(["clickhouse.usage_by_hour", "clickhouse.usage_by_minute"]);

/**
 * Asserts the stores agree with `expected` exactly. The local engine can show a rollup table with no
 * active part for a moment while a merge swaps parts (see analytics.int.test.ts), so differences found
 * in the rollups alone are read again a few times; a difference in any other store fails at once.
 */
export async function assertStoresMatch(config: Config, expected: Expected): Promise<void> {
  let differences = await storeDifferences(config, expected);
  for (let retry = 0; retry < 4 && differences.length > 0; retry++) {
    if (!differences.every((difference) => ROLLUPS.has(difference.store))) break;
    await sleep(500);
    differences = await storeDifferences(config, expected);
  }
  assert.deepEqual(
    differences.slice(0, 20).map(describeDifference),
    [],
    `${differences.length} differences between the stores and the billing core`,
  );
}

/** One line per difference, for assertion messages. */
export function describeDifference(difference: Difference): string {
  return `${difference.store} ${difference.subject} ${difference.field}: expected ${difference.expected}, stored ${difference.actual}`;
}

function accountKeyFields(mongo: MongoActual): Difference[] {
  const out: Difference[] = [];
  for (const [key, stored] of mongo.accounts) {
    const field = stored.doc.account_key;
    if (field === key) continue;
    out.push({
      store: "mongodb.accounts",
      subject: key,
      enterprise_id: stored.enterprise_id,
      account_key: key,
      level: stored.enterprise_id === null ? "platform" : "app_usage",
      field: "account_key",
      expected: key,
      actual: field === undefined || field === null ? null : String(field),
      delta: null,
      ...HARNESS,
    });
  }
  return out;
}

/** Without FINAL on purpose: a row inserted twice must not exist at all, not merely collapse later. */
async function rowsWrittenTwice(
  clickhouse: ClickHouseClient,
  database: string,
  table: RowTable,
  expected: Expected,
): Promise<Difference[]> {
  const result = await clickhouse.query({
    query: `SELECT toString(count()) AS rows, toString(uniqExact(account_key, record_id)) AS distinct_ids
            FROM ${quoteIdent(database)}.${table}`,
    format: "JSONEachRow",
  });
  const [row] = await result.json<{ rows: string; distinct_ids: string }>();
  const groups = table === "usage_events" ? expected.usage : expected.adjustments;
  let records = 0n;
  for (const group of groups.values()) records += group.figures.records;
  const want = String(records);
  const out: Difference[] = [];
  for (const field of ["rows", "distinct_ids"] as const) {
    const got = row?.[field] ?? "0";
    if (got === want) continue;
    out.push({
      store: `clickhouse.${table}`,
      subject: "every row, without FINAL",
      enterprise_id: null,
      account_key: null,
      level: null,
      field,
      expected: want,
      actual: got,
      delta: (BigInt(got) - BigInt(want)).toString(),
      ...HARNESS,
    });
  }
  return out;
}

const ACCOUNT_ROW_FIELDS = [
  ["tokens", "tokens_used"],
  ["cost_micros", "cost_micros"],
  ["billed_micros", "billed_micros"],
  ["creator_share_micros", "creator_share_micros"],
  ["platform_fee_micros", "platform_fee_micros"],
] as const satisfies readonly (readonly [string, keyof AccountState])[];

/** The usage rows of each account that used tokens sum to its document's figures. */
async function rowsPerAccount(
  clickhouse: ClickHouseClient,
  database: string,
  expected: Expected,
): Promise<Difference[]> {
  const result = await clickhouse.query({
    query: `SELECT account_key, toString(sum(tokens_used)) AS tokens, toString(sum(cost_micros)) AS cost_micros,
              toString(sum(billed_micros)) AS billed_micros, toString(sum(creator_share_micros)) AS creator_share_micros,
              toString(sum(platform_fee_micros)) AS platform_fee_micros
            FROM ${quoteIdent(database)}.usage_events FINAL GROUP BY account_key`,
    format: "JSONEachRow",
  });
  type Row = { account_key: string } & Record<(typeof ACCOUNT_ROW_FIELDS)[number][0], string>;
  const rows = new Map((await result.json<Row>()).map((row) => [row.account_key, row]));
  const out: Difference[] = [];
  for (const account of Object.values(expected.state.accounts)) {
    if (account.tokens_used === 0) continue;
    const row = rows.get(account.account_key);
    for (const [field, figure] of ACCOUNT_ROW_FIELDS) {
      const want = BigInt(account[figure] as number | bigint);
      const got = row === undefined ? 0n : BigInt(row[field]);
      if (want === got) continue;
      out.push({
        store: "clickhouse.usage_events",
        subject: account.account_key,
        enterprise_id: account.enterprise_id,
        account_key: account.account_key,
        level: account.level,
        field: `${field} of the account's rows`,
        expected: want.toString(),
        actual: got.toString(),
        delta: (got - want).toString(),
        ...HARNESS,
      });
    }
  }
  return out;
}
