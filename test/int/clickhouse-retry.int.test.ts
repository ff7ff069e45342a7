import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
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

  before(async () => {
    const config = await isolatedConfig();
    clickhouse = clickHouseFor(config);
    database = config.CLICKHOUSE_DATABASE;
    db = quoteIdent(database);
    await applyMigrations(clickhouse, config.CLICKHOUSE_DATABASE);
  });

  after(async () => {
    await clickhouse?.command({ query: `DROP DATABASE IF EXISTS ${db}` });
    await clickhouse?.close();
  });

  it("given an insert stored whose answer was lost and whose minute rollup part is gone, when the flush retries, then every table holds each record once", async () => {
    const rows = outcomes(40);
    let lost = false;
    // The real server does the insert; only its answer is lost, after the minute view's part is gone as
    // if the server had died before committing it.
    const answerLost = new Proxy(clickhouse, {
      get(target, property, receiver) {
        if (property !== "insert") return Reflect.get(target, property, receiver);
        return async (...args: Parameters<ClickHouseClient["insert"]>) => {
          const result = await target.insert(...args);
          if (lost) return result;
          lost = true;
          await target.command({ query: `TRUNCATE TABLE ${db}.usage_by_minute` });
          throw new Error("socket hang up (the answer of a stored insert was lost)");
        };
      },
    });
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
});
