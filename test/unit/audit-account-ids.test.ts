import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffStores, idsRepeatAcrossAccounts, rowEvidence } from "../../pipeline/audit/diff.ts";
import { readRecordIds, type StoredRowId, type UsageTotals } from "../../pipeline/audit/read-clickhouse.ts";
import type { MongoActual } from "../../pipeline/audit/read-mongo.ts";
import { type Expected, Recomputer, type TopicMessage } from "../../pipeline/audit/recompute.ts";
import { buildAuditReport, formatSummary, reportJson } from "../../pipeline/audit/report.ts";
import { mergeUnits, UnitRecompute } from "../../pipeline/audit/units.ts";
import { creditAuthorization } from "../../pipeline/auth/signature.ts";
import { defaultBillingConfig } from "../../pipeline/core/index.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import { accountKeyOf, type InputRecord } from "../../schemas/index.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { APP_IDS, credit, usage } from "./builders.ts";

/**
 * Record ids are unique per account, not across accounts (deduplication is per account): two end users
 * of one app may both send a record `u-1`. The audit's evidence for an app (its usage rows, rollups,
 * adjustments and revenue) must keep each id with its account, or one account's record stands in for
 * the other's.
 */

const ALICE = "enduser_alice";
const DAVE = "enduser_dave";
const aliceKey = `app:${APP_IDS.enterprise_id}:${ALICE}`;
const daveKey = `app:${APP_IDS.enterprise_id}:${DAVE}`;

/** Both users top up (paid usage earns revenue) and send u-1 and u-2; alice also u-3. */
function sameIdRecords(): InputRecord[] {
  const of = (user: string, id: string, minute: number) =>
    usage({
      record_id: id,
      platform_user_id: user,
      occurred_at: `2025-07-28T10:${String(minute).padStart(2, "0")}:00Z`,
      agent_usage: { Agent: { prompt_tokens: 40_000, completion_tokens: 10_000 } },
    });
  return [
    credit({ record_id: "c-1", platform_user_id: ALICE, tokens: 1_000_000 }),
    credit({ record_id: "c-1", platform_user_id: DAVE, tokens: 1_000_000 }),
    of(ALICE, "u-1", 1),
    of(DAVE, "u-1", 2),
    of(ALICE, "u-2", 3),
    of(DAVE, "u-2", 4),
    of(ALICE, "u-3", 5),
  ];
}

function message(record: InputRecord, offset: number): TopicMessage {
  return {
    offset: String(offset),
    key: Buffer.from(accountKeyOf(record)),
    value: Buffer.from(JSON.stringify(record)),
  };
}

function recompute(records: readonly InputRecord[]): Expected {
  const recomputer = new Recomputer(defaultBillingConfig, 65_536);
  for (const [offset, record] of records.entries()) recomputer.add(0, message(record, offset));
  return recomputer.finish();
}

/** The usage group of app_456's app_usage level and its (account, record id) pairs. */
function usagePairs(expected: Expected): string[] {
  const group = [...expected.usage.values()][0]!;
  return group.ids.map((id, i) => `${group.accounts[group.accountOf[i]!]}/${id}`);
}

/** Stores a correct processor leaves, but with usage_events and the revenue ledger one record short. */
function storesOneShort(expected: Expected): {
  mongo: MongoActual;
  clickhouse: { usage_events: Map<string, UsageTotals> };
} {
  const usageEvents = new Map(
    [...expected.usage].map(([key, group]) => [
      key,
      {
        enterprise_id: group.enterprise_id,
        level: group.level,
        figures: { ...group.figures, records: group.figures.records - 1n },
      },
    ]),
  );
  const revenue = new Map(
    [...expected.revenue].map(([app, ledger]) => [
      app,
      { ...ledger.figures, records: ledger.figures.records - 1n },
    ]),
  );
  return {
    mongo: { accounts: new Map(), revenue, apps: [...revenue.keys()] },
    clickhouse: { usage_events: usageEvents },
  };
}

describe("audit evidence: record ids repeated across accounts", () => {
  it("keeps each usage and revenue record id with its account", () => {
    const expected = recompute(sameIdRecords());
    assert.deepEqual(usagePairs(expected), [
      `${aliceKey}/u-1`,
      `${daveKey}/u-1`,
      `${aliceKey}/u-2`,
      `${daveKey}/u-2`,
      `${aliceKey}/u-3`,
    ]);
    const ledger = expected.revenue.get(APP_IDS.enterprise_id)!;
    assert.deepEqual(
      ledger.ids.map((id, i) => `${ledger.accounts[ledger.accountOf[i]!]}/${id}`),
      usagePairs(expected),
    );
    assert.equal(idsRepeatAcrossAccounts(ledger), true);
  });

  it("given an app's usage rows and revenue that differ, the evidence names the account of each repeated id", () => {
    const expected = recompute(sameIdRecords());
    const differences = diffStores(expected, storesOneShort(expected)).filter((d) => d.field === "records");
    assert.deepEqual(
      differences.map((d) => d.store),
      ["mongodb.revenue", "clickhouse.usage_events"],
    );
    for (const difference of differences) {
      assert.deepEqual(difference.record_ids, ["u-1", "u-1", "u-2", "u-2", "u-3"], difference.store);
      assert.deepEqual(
        difference.record_account_keys,
        [aliceKey, daveKey, aliceKey, daveKey, aliceKey],
        `${difference.store}: u-1 alone does not say whose`,
      );
    }
    // The summary for a person shows which account's record, too.
    const report = buildAuditReport({
      range: { topic: "t", partitions: [{ partition: 0, from: "0", to: "7" }], complete: true },
      namespace: { mongodb_platform_db: "P", mongodb_app_db_prefix: "A_", clickhouse_database: "c" },
      billing: defaultBillingConfig,
      counts: expected.counts,
      checked: {},
      differences,
    });
    assert.match(formatSummary(report), new RegExp(`${aliceKey}/u-1 ${daveKey}/u-1 \\(\\+3\\)`));
    // Account keys go last in each difference: every other field keeps its place in the JSON.
    const json = JSON.parse(reportJson(report)) as { differences: Record<string, unknown>[] };
    assert.equal(Object.keys(json.differences[0]!).at(-1), "record_account_keys");
  });

  it("given ids that do not repeat across accounts, the evidence is the ids alone, as before", () => {
    const records = sameIdRecords().filter(
      (record) => !(record.type === "usage" && record.platform_user_id === DAVE),
    );
    const expected = recompute(records);
    const differences = diffStores(expected, storesOneShort(expected)).filter(
      (d) => d.store !== "mongodb.accounts",
    );
    assert.equal(differences.length, 2);
    for (const difference of differences) {
      assert.equal("record_account_keys" in difference, false, difference.store);
      assert.deepEqual(difference.record_ids, ["u-1", "u-2", "u-3"]);
    }
  });

  it("given one account's row missing and another account's row of the same record id present, the missing record is the evidence", () => {
    const expected = recompute(sameIdRecords());
    const want = [...expected.usage.values()][0]!;
    // Every row but alice's u-1: dave's u-1 must not stand in for it.
    const stored: StoredRowId[] = [
      { account_key: daveKey, record_id: "u-1" },
      { account_key: aliceKey, record_id: "u-2" },
      { account_key: daveKey, record_id: "u-2" },
      { account_key: aliceKey, record_id: "u-3" },
    ];
    const found = rowEvidence("usage_events", want, stored);
    assert.deepEqual(found, {
      explained_by: "1 record(s) with no row in usage_events, then 0 row(s) with no record in the topic",
      record_ids: ["u-1"],
      record_ids_total: 1,
      record_account_keys: [aliceKey],
    });
    // A row of dave's u-3 (no such record) is extra, though alice has a u-3.
    const extra = rowEvidence("usage_events", want, [
      ...stored,
      { account_key: aliceKey, record_id: "u-1" },
      { account_key: daveKey, record_id: "u-3" },
    ]);
    assert.deepEqual([extra?.record_ids, extra?.record_account_keys], [["u-3"], [daveKey]]);
    assert.equal(
      rowEvidence("usage_events", want, [...stored, { account_key: aliceKey, record_id: "u-1" }]),
      undefined,
    );
  });

  it("given rows whose ids are unique, row evidence is as before: missing in order applied, then extra rows by id", () => {
    const expected = recompute(sameIdRecords().filter((record) => record.platform_user_id !== DAVE));
    const want = [...expected.usage.values()][0]!;
    const found = rowEvidence("usage_events", want, [
      { account_key: aliceKey, record_id: "u-2" },
      { account_key: aliceKey, record_id: "z-9" },
      { account_key: aliceKey, record_id: "a-0" },
    ]);
    assert.deepEqual(found, {
      explained_by: "2 record(s) with no row in usage_events, then 2 row(s) with no record in the topic",
      record_ids: ["u-1", "u-3", "a-0", "z-9"],
      record_ids_total: 4,
    });
  });

  it("reads the stored rows' accounts with their record ids, one row per account and id", async () => {
    const sent: string[] = [];
    const client = {
      query: async ({ query }: { query: string }) => {
        sent.push(query);
        return {
          json: async () => [
            { account_key: aliceKey, record_id: "u-1" },
            { account_key: daveKey, record_id: "u-1" },
          ],
        };
      },
    } as unknown as ClickHouseClient;
    const rows = await readRecordIds(client, "db", "usage_events", APP_IDS.enterprise_id, "app_usage", {
      source: "t",
    });
    assert.match(sent[0]!, /SELECT DISTINCT account_key, record_id FROM/);
    assert.deepEqual(rows, [
      { account_key: aliceKey, record_id: "u-1" },
      { account_key: daveKey, record_id: "u-1" },
    ]);
  });

  it("keeps each id's account when units on other partitions are merged", () => {
    const records = sameIdRecords();
    const partitions = 4;
    const partitionOf = (record: InputRecord) => partitionForKey(accountKeyOf(record), partitions);
    assert.notEqual(partitionOf(records[2]!), partitionOf(records[3]!), "the two users on two partitions");
    const units = new UnitRecompute({
      billing: defaultBillingConfig,
      maxRecordBytes: 65_536,
      partitionCounts: [partitions],
      creditPolicy: creditAuthorization({}),
      partitions: [0, 1, 2, 3],
    });
    for (const [offset, record] of records.entries()) units.add(partitionOf(record), message(record, offset));
    const merged = mergeUnits(units.finish());
    const pairs = usagePairs(merged);
    // Unit after unit (partition order), each in offset order: the same pairs as one recompute.
    assert.deepEqual([...pairs].sort(), [...usagePairs(recompute(records))].sort());
    const first = partitionOf(records[2]!) < partitionOf(records[3]!) ? aliceKey : daveKey;
    assert.equal(pairs[0], `${first}/u-1`);
    const group = [...merged.usage.values()][0]!;
    assert.equal(group.accounts.length, 2, "each account once");
  });
});
