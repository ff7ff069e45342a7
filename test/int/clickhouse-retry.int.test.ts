import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import type { PositionedOutcome } from "../../pipeline/processor/ports.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { applyMigrations } from "../../sinks/clickhouse/migrations.ts";
import { ROLLUPS } from "../../sinks/clickhouse/rollups.ts";
import { adjustmentRow, UsageEventsSink, usageEventRow } from "../../sinks/clickhouse/usage-events.ts";
import { eventually, isolatedConfig } from "../support/pipeline.ts";
import { at, ofKind, run, usage, voidOf } from "../unit/builders.ts";

/**
 * A ClickHouse killed mid-insert may keep some tables' parts of the insert and not others: the raw table
 * and each rollup view commit one after another, with nothing binding them (ClickHouse issue 104661), and
 * its deduplication log can name a part the server did not keep (measured: the retry under the same token
 * was dropped and the raw rows lost). These tests put the real server in such states (the insert is done,
 * its answer lost, and some tables' parts gone) and check that the sink's next flush, reading each table's
 * own marks, leaves every table with each record once: none missing, none doubled (the raw table even
 * without FINAL).
 */

const TOPIC = "retry.usage";
const TABLES = [
  "usage_events",
  "usage_by_minute",
  "usage_by_hour",
  "agent_usage_by_minute",
  "agent_usage_by_hour",
];

/** `count` usage rows at offsets 0..count-1, a minute apart, or at the minutes `minute` gives. */
function outcomes(count: number, minute: (i: number) => number = (i) => i): PositionedOutcome[] {
  const records = Array.from({ length: count }, (_, i) =>
    usage({
      record_id: `u-${i}`,
      occurred_at: at(minute(i)),
      agent_usage: { A: { prompt_tokens: 100, completion_tokens: 10 } },
    }),
  );
  return ofKind(run(records).outputs, "usage_outcome").map((outcome, i) => ({
    position: { topic: TOPIC, partition: 0, offset: String(i) },
    outcome,
  }));
}

describe("ClickHouse: the next flush after a server lost some tables' parts of an insert", () => {
  let clickhouse: ClickHouseClient;
  let db: string;
  let database: string;

  async function figure(query: string): Promise<string> {
    const result = await clickhouse.query({ query, format: "JSONEachRow" });
    const [row] = await result.json<{ n: string }>();
    return row?.n ?? "none";
  }

  /**
   * A client whose first write the real server does, after which `lost` runs (as if the server had died
   * before committing those parts) and the answer is lost.
   */
  function oneAnswerLost(lost: () => Promise<void>, nth = 1): ClickHouseClient {
    let inserts = 0;
    return new Proxy(clickhouse, {
      get(target, property, receiver) {
        if (property !== "insert") return Reflect.get(target, property, receiver);
        return async (...args: Parameters<ClickHouseClient["insert"]>) => {
          const result = await target.insert(...args);
          if (++inserts !== nth) return result;
          await lost();
          throw new Error("socket hang up (the answer of a stored insert was lost)");
        };
      },
    });
  }

  const truncate = (tables: readonly string[]) => async () => {
    for (const table of tables) await clickhouse.command({ query: `TRUNCATE TABLE ${db}.${table}` });
  };

  async function assertEachOnce(count: number): Promise<void> {
    const n = String(count);
    assert.equal(await figure(`SELECT toString(count()) AS n FROM ${db}.usage_events`), n, "usage_events");
    assert.equal(await figure(`SELECT toString(uniqExact(offset)) AS n FROM ${db}.usage_events`), n);
    for (const table of ["usage_by_minute", "usage_by_hour"]) {
      assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.${table}`), n, table);
    }
    for (const table of ["agent_usage_by_minute", "agent_usage_by_hour"]) {
      assert.equal(await figure(`SELECT toString(sum(calls)) AS n FROM ${db}.${table}`), n, table);
    }
  }

  before(async () => {
    const config = await isolatedConfig();
    clickhouse = clickHouseFor(config);
    database = config.CLICKHOUSE_DATABASE;
    db = quoteIdent(database);
    await applyMigrations(clickhouse, config.CLICKHOUSE_DATABASE);
  });

  beforeEach(async () => {
    await truncate(TABLES)();
  });

  after(async () => {
    await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    await clickhouse?.close();
  });

  /** The table's rows of one topic, every column but the topic and the insert time, in offset order. */
  async function rowsOf(table: string, topic: string): Promise<Record<string, unknown>[]> {
    const result = await clickhouse.query({
      query: `SELECT * EXCEPT (topic, ingested_at) FROM ${db}.${table} WHERE topic = {topic:String} ORDER BY offset`,
      query_params: { topic },
      format: "JSONEachRow",
    });
    return result.json<Record<string, unknown>>();
  }

  it("a usage or adjustment row the sink writes holds in every column what its row builder gave (values only, the names once per insert)", async () => {
    const records = [
      ...Array.from({ length: 5 }, (_, i) =>
        usage({
          record_id: `c-${i}`,
          occurred_at: at(i),
          agent_usage: {
            A: {
              prompt_tokens: 100 + i,
              completion_tokens: 10 + i,
              cached_prompt_tokens: 3,
              reasoning_tokens: 7 + i,
              response_time_ms: 120.5,
            },
            B: { prompt_tokens: 1, completion_tokens: 2, message_count: 4 },
          },
        }),
      ),
      voidOf("c-1"),
      voidOf("c-3"),
    ];
    const outputs = run(records).outputs;
    const usageRows = ofKind(outputs, "usage_outcome").map((outcome, i) => ({
      position: { topic: TOPIC, partition: 0, offset: String(i) },
      outcome,
    }));
    const adjustmentRows = ofKind(outputs, "adjustment").map((adjustment, i) => ({
      position: { topic: TOPIC, partition: 0, offset: String(5 + i) },
      adjustment,
    }));
    assert.equal(adjustmentRows.length, 2);
    const sink = new UsageEventsSink(clickhouse, database);
    await sink.append(TOPIC, 0, usageRows);
    await sink.appendAdjustments(TOPIC, 0, adjustmentRows);
    // The same rows as named JSON objects (each value under its column's name), under another topic.
    const reference = { topic: "reference", partition: 0 };
    await clickhouse.insert({
      table: `${db}.usage_events`,
      values: usageRows.map((row) => usageEventRow({ ...row, position: { ...row.position, ...reference } })),
      format: "JSONEachRow",
    });
    await clickhouse.insert({
      table: `${db}.adjustments`,
      values: adjustmentRows.map((row) =>
        adjustmentRow({ ...row, position: { ...row.position, ...reference } }),
      ),
      format: "JSONEachRow",
    });
    for (const [table, count] of [
      ["usage_events", 5],
      ["adjustments", 2],
    ] as const) {
      const written = await rowsOf(table, TOPIC);
      assert.equal(written.length, count, table);
      assert.deepEqual(written, await rowsOf(table, "reference"), table);
    }
  });

  for (const lost of [
    ["usage_events"],
    ["usage_by_minute"],
    ["usage_by_hour", "agent_usage_by_minute"],
    ["usage_events", "agent_usage_by_hour"],
    TABLES,
  ]) {
    it(`given an insert whose answer was lost and whose parts in ${lost.join(", ")} are gone, when the flush retries, then every table holds each record once`, async () => {
      const rows = outcomes(40);
      const sink = new UsageEventsSink(oneAnswerLost(truncate(lost)), database);
      await assert.rejects(sink.append(TOPIC, 0, rows), /socket hang up/);
      for (const table of lost.filter((t) => t.startsWith("usage_by")))
        assert.equal(
          await figure(`SELECT toString(count()) AS n FROM ${db}.${table}`),
          "0",
          `${table} lost its part`,
        );

      // When the flush is retried with the same rows
      const sent = await sink.append(TOPIC, 0, rows);

      // Then each table holds each record once, and the raw rows went again only if the raw table lost them
      await assertEachOnce(40);
      assert.equal(sent, lost.includes("usage_events") ? 40 : 0);
      // And a new owner of the partition reads the marks and sends none of it again
      const again = new UsageEventsSink(clickhouse, database);
      assert.equal(await again.append(TOPIC, 0, rows), 0);
      await assertEachOnce(40);
    });
  }

  // A stage whose cycle failed is dropped and its records fetched again; the next cycle is cut
  // differently (it takes whatever is queued), and the partition may have moved to another member.
  for (const [name, next] of [
    ["the same owner, its marks read afresh", "same"],
    ["a new owner of the partition", "new"],
  ] as const) {
    it(`given a failed insert some of whose tables kept their part, when ${name} flushes a larger cut, then every table holds each record once`, async () => {
      const rows = outcomes(60);
      const sink = new UsageEventsSink(oneAnswerLost(truncate(["usage_by_hour", "usage_events"])), database);
      await assert.rejects(sink.append(TOPIC, 0, rows.slice(0, 40)), /socket hang up/);
      assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.usage_by_minute`), "40");

      const writer = next === "same" ? sink : new UsageEventsSink(clickhouse, database);
      const sent = await writer.append(TOPIC, 0, rows);

      await assertEachOnce(60);
      assert.equal(sent, 60, "the raw table lacked all 60 rows");
    });
  }

  it("given a flush of two months interleaved whose later insert (July's, lower offsets) lost its raw part after August's landed, when it is retried, then each record is once in every table (marks are per month)", async () => {
    // Even offsets on 2 August, odd ones on 28 July (late records): August appears first, so its insert
    // goes first and holds the flush's highest offset; one mark for the partition would call July there.
    const rows = outcomes(40, (i) => (i % 2 === 0 ? 5 * 1_440 + i : i));
    const lostJuly = async () => {
      await clickhouse.command({
        query: `ALTER TABLE ${db}.usage_events DELETE WHERE toYYYYMM(occurred_at) = 202507`,
        clickhouse_settings: { mutations_sync: "2" },
      });
    };
    const sink = new UsageEventsSink(oneAnswerLost(lostJuly, 2), database);
    await assert.rejects(sink.append(TOPIC, 0, rows), /socket hang up/);
    assert.equal(await figure(`SELECT toString(count()) AS n FROM ${db}.usage_events`), "20");
    assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.usage_by_hour`), "40");

    assert.equal(await sink.append(TOPIC, 0, rows), 20, "July's twenty rows, to the raw table alone");
    await assertEachOnce(40);
  });

  it("given a rollup behind the raw table whose month of the partition also counts some rows twice, when the flush fills it, then the month is rebuilt in it and every table holds each record once", async () => {
    const rows = outcomes(40);
    const sink = new UsageEventsSink(clickhouse, database);
    await sink.append(TOPIC, 0, rows.slice(0, 20));
    // usage_by_hour counts rows 0-9 a second time (a view part kept twice; its mark stays 19) ...
    const [hour] = ROLLUPS.filter((rollup) => rollup.table === "usage_by_hour");
    await clickhouse.command({
      query: `INSERT INTO ${db}.usage_by_hour ${hour!.select(`(SELECT * FROM ${db}.usage_events WHERE offset <= 9)`)}`,
      clickhouse_settings: { insert_deduplicate: 0 },
    });
    // ... and the raw table holds rows 20-39 that no rollup has (their view parts lost).
    await clickhouse.insert({
      table: `${db}.usage_events`,
      values: rows.slice(20).map(usageEventRow),
      format: "JSONEachRow",
    });
    assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.usage_by_hour`), "30");

    // When a new owner flushes the records again
    assert.equal(await new UsageEventsSink(clickhouse, database).append(TOPIC, 0, rows), 0);

    // Then the fills brought every rollup to 40, and the hour rollup's month was rebuilt, not left at 50
    await assertEachOnce(40);
  });

  it("given an insert of the partition still running on the server, when a new owner flushes the same rows, then it waits for it, reads the marks after, and doubles nothing", async () => {
    const rows = outcomes(30);
    // A slow insert of the rows (a tenth of a second a row), under a query id of this partition's writes.
    await clickhouse.command({ query: `CREATE TABLE ${db}.staged AS ${db}.usage_events ENGINE = Memory` });
    try {
      await clickhouse.insert({
        table: `${db}.staged`,
        values: rows.map(usageEventRow),
        format: "JSONEachRow",
      });
      const slow = clickhouse.command({
        query: `INSERT INTO ${db}.usage_ingest SELECT * FROM ${db}.staged WHERE sleepEachRow(0.1) = 0`,
        query_id: `agentmeter:${TOPIC}:0:slow-${Date.now()}`,
        clickhouse_settings: { max_block_size: "1" },
      });
      await eventually("the slow insert running", async () =>
        (await figure(
          `SELECT toString(count()) AS n FROM system.processes WHERE startsWith(query_id, 'agentmeter:${TOPIC}:0:slow')`,
        )) === "1"
          ? true
          : undefined,
      );
      const started = Date.now();
      const sent = await new UsageEventsSink(clickhouse, database).append(TOPIC, 0, rows);
      await slow;
      assert.equal(sent, 0, "everything was there once the slow insert ended");
      assert.ok(Date.now() - started >= 1_000, "the new owner waited for the running insert");
      await assertEachOnce(30);
    } finally {
      await clickhouse.command({ query: `DROP TABLE IF EXISTS ${db}.staged` });
    }
  });

  it("given a failed insert, when another owner has written past it, then the partition's next flush sends only what is past that", async () => {
    const rows = outcomes(60);
    const sink = new UsageEventsSink(
      oneAnswerLost(async () => undefined),
      database,
    );
    await assert.rejects(sink.append(TOPIC, 0, rows.slice(0, 40)), /socket hang up/);
    sink.forget(TOPIC, 0);
    // Another member owned the partition meanwhile and wrote on past the run.
    const other = new UsageEventsSink(clickhouse, database);
    assert.equal(await other.append(TOPIC, 0, rows.slice(0, 50)), 10);

    // When the partition comes back, only the rows past the other owner's are sent
    assert.equal(await sink.append(TOPIC, 0, rows), 10);
    await assertEachOnce(60);
  });
});
