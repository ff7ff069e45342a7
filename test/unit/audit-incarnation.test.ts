import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffStores } from "../../pipeline/audit/diff.ts";
import { ofIncarnation, sourceOf, type TopicRange } from "../../pipeline/audit/range.ts";
import {
  newestIncarnation,
  readAdjustmentTotals,
  readRecordIds,
  readUsageTotals,
  scopeFilter,
} from "../../pipeline/audit/read-clickhouse.ts";
import { type MongoActual, sourceRevenue } from "../../pipeline/audit/read-mongo.ts";
import { type Expected, zeroCounts } from "../../pipeline/audit/recompute.ts";
import { buildAuditReport, formatSummary, reportJson } from "../../pipeline/audit/report.ts";
import { type AccountState, parseBillingConfig } from "../../pipeline/core/index.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { sourceName } from "../../sinks/mongo/topic-registry.ts";

/**
 * A topic deleted and created again restarts at offset 0, and the processor stores the new one's rows,
 * ledgers and watermarks under `topic~N` (sinks/mongo/topic-registry.ts). The audit reads the
 * incarnation from AgentmeterTopics and compares the new log with that name's rows only.
 */

const whole: TopicRange = {
  topic: "usage",
  partitions: [
    { partition: 0, from: "0", to: "40" },
    { partition: 1, from: "0", to: "12" },
  ],
  complete: true,
};

/** A ClickHouse client that answers nothing and keeps every query it was sent. */
function recordingClient(): {
  client: ClickHouseClient;
  sent: { query: string; params: Record<string, unknown> }[];
} {
  const sent: { query: string; params: Record<string, unknown> }[] = [];
  const client = {
    query: async ({ query, query_params }: { query: string; query_params?: Record<string, unknown> }) => {
      sent.push({ query, params: query_params ?? {} });
      return { json: async () => [] };
    },
  } as unknown as ClickHouseClient;
  return { client, sent };
}

describe("audit of a re-created topic: its incarnation", () => {
  it("the range of incarnation 0 is the topic's own name, complete when read whole", () => {
    const range = ofIncarnation(whole, 0);
    assert.equal(range.complete, true);
    assert.equal(range.source, "usage");
    assert.equal(sourceOf(range), "usage");
    assert.equal(sourceOf(whole), "usage", "a range that does not say: the topic's own name");
  });

  it("a whole read of incarnation 2 is a delta audit of the rows stored as topic~2: the history before is in no log", () => {
    const range = ofIncarnation(whole, 2);
    assert.equal(range.complete, false);
    assert.equal(range.incarnation, 2);
    assert.equal(range.source, sourceName("usage", 2));
    assert.equal(sourceOf(range), "usage~2");
    assert.deepEqual(range.partitions, whole.partitions);
    assert.equal(ofIncarnation({ ...whole, complete: false }, 0).complete, false);
    assert.throws(() => ofIncarnation(whole, -1));
    assert.throws(() => ofIncarnation(whole, 1.5));
  });

  it("every ClickHouse read is of the rows stored under the audited name: raw rows and adjustments by topic, rollups by src_topic", async () => {
    const { client, sent } = recordingClient();
    const all = { source: "usage~2" };
    await readUsageTotals(client, "db", "usage_events", all);
    await readUsageTotals(client, "db", "usage_by_hour", all);
    await readUsageTotals(client, "db", "usage_by_minute", all);
    await readAdjustmentTotals(client, "db", all);
    await readRecordIds(client, "db", "usage_events", "app-1", "app_usage", all);
    await readRecordIds(client, "db", "adjustments", "app-1", "app_usage", all);
    assert.equal(sent.length, 6);
    for (const { query, params } of sent) {
      assert.equal(params.source, "usage~2", query);
      const rollup = /usage_by_(hour|minute)/.test(query);
      assert.match(query, rollup ? /WHERE src_topic = \{source:String\}/ : /topic = \{source:String\} AND 1/);
    }
    // Without a scope (test harnesses comparing a whole namespace): every row, as before.
    sent.length = 0;
    await readUsageTotals(client, "db", "usage_events");
    await readAdjustmentTotals(client, "db");
    for (const { query } of sent) assert.match(query, /WHERE 1 GROUP BY/);
  });

  it("a delta read is of the range's offsets of the audited name; a rollup cannot be cut by offsets", async () => {
    const { client, sent } = recordingClient();
    const range = ofIncarnation({ ...whole, partitions: [{ partition: 1, from: "5", to: "12" }] }, 1);
    await readUsageTotals(client, "db", "usage_events", { source: sourceOf(range), offsets: range });
    await readRecordIds(client, "db", "usage_events", "app-1", "app_usage", {
      source: sourceOf(range),
      offsets: range,
    });
    for (const { query, params } of sent) {
      assert.equal(params.source, "usage~1");
      assert.match(
        query,
        /topic = \{source:String\} AND \(\(partition = 1 AND offset >= 5 AND offset < 12\)\)/,
      );
    }
    assert.throws(() => scopeFilter({ source: "usage~1", offsets: range }, "rollup"), /no offsets/);
    assert.deepEqual(scopeFilter(undefined, "rows"), { where: "1", params: {} });
  });

  it("without the registry, the newest incarnation ClickHouse holds rows of", () => {
    assert.equal(newestIncarnation("usage", []), 0);
    assert.equal(newestIncarnation("usage", ["usage"]), 0);
    assert.equal(
      newestIncarnation("usage", [
        "usage",
        "usage~1",
        "usage~12",
        "usage~3",
        "usage~x",
        "usage~01",
        "usages~40",
      ]),
      12,
    );
  });

  it("an app's revenue is the sum of its ledgers of the audited name only", () => {
    const ledger = (id: string, records: number, billed: bigint) => ({
      _id: id,
      records,
      billed_micros: billed,
      creator_share_micros: billed / 2n,
      platform_fee_micros: billed / 2n,
    });
    const ledgers = [
      ledger("usage:0", 10, 1_000n),
      ledger("usage:1", 5, 500n),
      ledger("usage~1:0", 2, 70n),
      ledger("usage~1:3", 1, 30n),
      ledger("usage~10:0", 100, 9_999n),
      ledger("usage~1:x", 100, 9_999n),
    ];
    const first = sourceRevenue(ledgers, "usage");
    assert.equal(first.records, 15n);
    assert.equal(first.billed_micros, 1_500n);
    assert.equal(first.adjustments, 0n, "ledgers from before corrections: 0");
    const second = sourceRevenue(ledgers, "usage~1");
    assert.equal(second.records, 3n);
    assert.equal(second.billed_micros, 100n);
    assert.equal(second.platform_fee_micros, 50n);
  });

  it("a document's watermark names the records after it only when it is a position of the audited name", () => {
    const key = "app:app-1:u1";
    const account = { account_key: key, level: "app_usage", enterprise_id: "app-1" } as AccountState;
    const expected: Expected = {
      state: { accounts: { [key]: { ...account, credited_tokens: 5 } } },
      holds: new Map(),
      trails: new Map([[key, { partition: 0, ids: ["a", "b", "c", "d"], offsets: [0, 1, 2, 3] }]]),
      usage: new Map(),
      adjustments: new Map(),
      revenue: new Map(),
      counts: zeroCounts(),
    };
    const mongo = (wmTopic: string, wmPartition = 0, wmOffset = 1, source = "usage~1"): MongoActual => ({
      accounts: new Map([
        [
          key,
          {
            account_key: key,
            level: "app_usage",
            enterprise_id: "app-1",
            doc: { credited_tokens: 7, wm_topic: wmTopic, wm_partition: wmPartition, wm_offset: wmOffset },
          },
        ],
      ]),
      revenue: new Map(),
      apps: ["app-1"],
      source,
    });
    const evidence = (actual: MongoActual) => {
      const found = diffStores(expected, { mongo: actual, clickhouse: {} }).find(
        (d) => d.field === "credited_tokens",
      )!;
      return [found.explained_by, found.record_ids];
    };
    assert.deepEqual(evidence(mongo("usage~1")), [
      "records after the document's watermark (wm_offset 1)",
      ["c", "d"],
    ]);
    // Offset 1 of the topic before it was created again is no position in this log.
    assert.deepEqual(evidence(mongo("usage")), [
      "every record of the account, in topic order",
      ["a", "b", "c", "d"],
    ]);
    // An account on its old and its new partition (a partition count that changed): after the watermark
    // are the records applied after the last one of the watermark's partition at or before it.
    expected.trails.set(key, {
      partition: 0,
      ids: ["a", "b", "c", "d", "e"],
      offsets: [0, 1, 0, 4, 2],
      partitions: [0, 0, 3, 3, 0],
    });
    assert.deepEqual(evidence(mongo("usage~1", 3, 0))[1], ["d", "e"]);
    assert.deepEqual(evidence(mongo("usage~1", 0, 1))[1], ["c", "d", "e"]);
    assert.deepEqual(
      evidence(mongo("usage~1", 5, 9))[1],
      ["a", "b", "c", "d", "e"],
      "no record of that partition",
    );
  });

  /** What a report needs besides its range: nothing compared, nothing found. */
  const reportInput = {
    namespace: { mongodb_platform_db: "P", mongodb_app_db_prefix: "A_", clickhouse_database: "c" },
    billing: parseBillingConfig({}),
    counts: zeroCounts(),
    checked: {},
    differences: [],
  };

  it("the report says which incarnation it audited and the name its rows are stored under", () => {
    const recreated = buildAuditReport({ ...reportInput, range: ofIncarnation(whole, 3) });
    assert.equal(recreated.mode, "delta");
    assert.equal(recreated.incarnation, 3);
    assert.equal(recreated.source, "usage~3");
    const json = reportJson(recreated);
    assert.ok(json.indexOf('"incarnation": 3') < json.indexOf('"partitions"'));
    const summary = formatSummary(recreated);
    assert.match(summary, /^Audit of usage incarnation 3 \(stored as usage~3\) \(delta\)/);
    assert.match(summary, /usage was created again \(incarnation 3\)/);
    const first = buildAuditReport({ ...reportInput, range: whole });
    assert.equal(first.mode, "complete");
    assert.equal(first.incarnation, 0);
    assert.equal(first.source, "usage");
    assert.doesNotMatch(formatSummary(first), /incarnation/);
  });

  it("a delta audit whose log starts past offset 0 says what is not compared and why it may be so", () => {
    // Retention removed partition 1's first records: it starts at 4.
    const trimmed: TopicRange = {
      ...whole,
      partitions: whole.partitions.map((p) => (p.partition === 1 ? { ...p, from: "4" } : p)),
      complete: false,
    };
    const summary = formatSummary(buildAuditReport({ ...reportInput, range: trimmed }));
    assert.match(summary, /^Delta audit: partitions 1 at 4 are read from past offset 0, .*retention\.ms=-1/m);
    assert.doesNotMatch(formatSummary(buildAuditReport({ ...reportInput, range: whole })), /Delta audit/);
    // A re-created topic has its own line; a range ending early is not past offset 0.
    assert.doesNotMatch(
      formatSummary(buildAuditReport({ ...reportInput, range: ofIncarnation(whole, 2) })),
      /Delta audit/,
    );
    const early: TopicRange = { ...trimmed, partitions: [{ partition: 0, from: "0", to: "3" }] };
    assert.doesNotMatch(formatSummary(buildAuditReport({ ...reportInput, range: early })), /Delta audit/);
  });
});
