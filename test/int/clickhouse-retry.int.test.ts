import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import type { PositionedOutcome } from "../../pipeline/processor/ports.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { applyMigrations } from "../../sinks/clickhouse/migrations.ts";
import { UsageEventsSink } from "../../sinks/clickhouse/usage-events.ts";
import { isolatedConfig } from "../support/pipeline.ts";
import { at, ofKind, run, usage } from "../unit/builders.ts";

/**
 * A ClickHouse killed mid-insert may keep the raw rows of the insert and not the rollup views' rows:
 * ClickHouse commits the source part, then each view's part, with nothing binding them (ClickHouse issue
 * 104661). This test puts the real server in that state (the insert is stored, its answer is lost, and
 * one view's part is gone) and checks that the sink's retry of the same run restores the view and
 * doubles nothing, in the raw table or in any view.
 */

const TOPIC = "retry.usage";

function outcomes(count: number): PositionedOutcome[] {
  const records = Array.from({ length: count }, (_, i) =>
    usage({
      record_id: `u-${i}`,
      occurred_at: at(i),
      agent_usage: { A: { prompt_tokens: 100, completion_tokens: 10 } },
    }),
  );
  return ofKind(run(records).outputs, "usage_outcome").map((outcome, i) => ({
    position: { topic: TOPIC, partition: 0, offset: String(i) },
    outcome,
  }));
}

describe("ClickHouse: a retried insert after a server lost a view's part", () => {
  let clickhouse: ClickHouseClient;
  let db: string;
  let database: string;

  async function figure(query: string): Promise<string> {
    const result = await clickhouse.query({ query, format: "JSONEachRow" });
    const [row] = await result.json<{ n: string }>();
    return row?.n ?? "none";
  }

  /**
   * A client whose first insert the real server does, after which one view's part is gone (as if the
   * server had died before committing it) and the answer is lost.
   */
  function oneAnswerLost(viewTable: string): ClickHouseClient {
    let lost = false;
    return new Proxy(clickhouse, {
      get(target, property, receiver) {
        if (property !== "insert") return Reflect.get(target, property, receiver);
        return async (...args: Parameters<ClickHouseClient["insert"]>) => {
          const result = await target.insert(...args);
          if (lost) return result;
          lost = true;
          await target.command({ query: `TRUNCATE TABLE ${db}.${viewTable}` });
          throw new Error("socket hang up (the answer of a stored insert was lost)");
        };
      },
    });
  }

  async function assertEachOnce(count: number): Promise<void> {
    const n = String(count);
    assert.equal(await figure(`SELECT count() AS n FROM ${db}.usage_events FINAL`), n, "usage_events");
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
    for (const table of [
      "usage_events",
      "usage_by_minute",
      "usage_by_hour",
      "agent_usage_by_minute",
      "agent_usage_by_hour",
    ])
      await clickhouse.command({ query: `TRUNCATE TABLE ${db}.${table}` });
  });

  after(async () => {
    await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    await clickhouse?.close();
  });

  it("given an insert stored whose answer was lost and whose minute rollup part is gone, when the flush retries, then every table holds each record once", async () => {
    const rows = outcomes(40);
    const answerLost = oneAnswerLost("usage_by_minute");
    const sink = new UsageEventsSink(answerLost, database);
    await assert.rejects(sink.append(TOPIC, 0, rows), /socket hang up/);
    assert.equal(await figure(`SELECT count() AS n FROM ${db}.usage_events`), "40", "the insert was stored");
    assert.equal(
      await figure(`SELECT toString(sum(records)) AS n FROM ${db}.usage_by_minute`),
      "0",
      "the minute view lost its part",
    );

    // When the flush is retried with the same rows
    assert.equal(await sink.append(TOPIC, 0, rows), 40);

    // Then the raw table holds each row once (not only under FINAL), and so does every rollup
    assert.equal(await figure(`SELECT count() AS n FROM ${db}.usage_events`), "40");
    for (const table of ["usage_by_minute", "usage_by_hour"]) {
      assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.${table}`), "40", table);
    }
    for (const table of ["agent_usage_by_minute", "agent_usage_by_hour"]) {
      assert.equal(await figure(`SELECT toString(sum(calls)) AS n FROM ${db}.${table}`), "40", table);
    }
    // And a new owner of the partition reads the watermark and sends none of it again
    const again = new UsageEventsSink(clickhouse, database);
    assert.equal(await again.append(TOPIC, 0, rows), 0);
  });

  // A stage whose cycle failed is dropped and its records fetched again; the next cycle is cut
  // differently (it takes whatever is queued), so its first insert spans other offsets than the failed one.
  for (const [name, forget] of [
    ["the partition's watermark read afresh (a dropped stage)", true],
    ["the watermark still known", false],
  ] as const) {
    it(`given a failed insert some of whose views kept their part, when the next flush is cut differently with ${name}, then every table holds each record once`, async () => {
      const rows = outcomes(60);
      const sink = new UsageEventsSink(oneAnswerLost("usage_by_hour"), database);
      await assert.rejects(sink.append(TOPIC, 0, rows.slice(0, 40)), /socket hang up/);
      assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.usage_by_minute`), "40");
      assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.usage_by_hour`), "0");
      if (forget) sink.forget(TOPIC, 0);

      // When the records are planned again and flushed in one larger cut
      const sent = await sink.append(TOPIC, 0, rows);

      // Then the run that failed went first, as it was: no view counts it twice, none misses it
      await assertEachOnce(60);
      assert.equal(sent, 60, "the failed run's 40 rows again, then the 20 past it");
    });
  }

  it("given a failed insert, when another owner has written past it, then it is not sent again", async () => {
    const rows = outcomes(60);
    const sink = new UsageEventsSink(oneAnswerLost("usage_by_hour"), database);
    await assert.rejects(sink.append(TOPIC, 0, rows.slice(0, 40)), /socket hang up/);
    sink.forget(TOPIC, 0);
    // Another member owned the partition meanwhile and wrote on past the run (its watermark re-read).
    const other = new UsageEventsSink(clickhouse, database);
    assert.equal(await other.append(TOPIC, 0, rows.slice(0, 50)), 10);

    // When the partition comes back, the run in doubt is dropped rather than sent again
    assert.equal(await sink.append(TOPIC, 0, rows), 10);
    assert.equal(await figure(`SELECT count() AS n FROM ${db}.usage_events`), "60", "raw rows, no repeat");
    assert.equal(await figure(`SELECT toString(sum(records)) AS n FROM ${db}.usage_by_minute`), "60");
  });
});
