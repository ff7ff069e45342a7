import { type ClickHouseClient, quoteIdent } from "../../sinks/clickhouse/client.ts";
import type { Figures, UsageField } from "./figures.ts";
import type { TopicRange } from "./range.ts";
import { usageGroupKey } from "./recompute.ts";

export interface UsageTotals {
  enterprise_id: string;
  level: string;
  figures: Figures<UsageField>;
}

/** The tables compared; the rollups only on a complete audit (they carry no offsets to cut a range by). */
export const CLICKHOUSE_SOURCES = {
  usage_events: "usage_events FINAL",
  usage_by_hour: "usage_by_hour",
  usage_by_minute: "usage_by_minute",
} as const;
export type ClickHouseSource = keyof typeof CLICKHOUSE_SOURCES;

// Aliases differ from the column names: ClickHouse resolves an alias before a column of the same name.
type Row = {
  app: string;
  lvl: string;
  n_records: string;
  n_tokens: string;
  n_cost: string;
  n_billed: string;
  n_creator: string;
  n_fee: string;
};

/** A WHERE clause selecting the rows of the range's offsets; offsets are validated integers, inlined. */
function rangeFilter(range: TopicRange | undefined): string {
  if (range === undefined) return "1";
  const parts = range.partitions
    .filter((p) => BigInt(p.from) < BigInt(p.to))
    .map((p) => `(partition = ${p.partition} AND offset >= ${BigInt(p.from)} AND offset < ${BigInt(p.to)})`);
  return parts.length === 0 ? "0" : `(${parts.join(" OR ")})`;
}

/**
 * Totals per app and level of one table. For usage_events each row is a record; a rollup row already
 * holds sums, hence the two select lists.
 */
export async function readUsageTotals(
  client: ClickHouseClient,
  database: string,
  source: ClickHouseSource,
  range?: TopicRange,
): Promise<Map<string, UsageTotals>> {
  const raw = source === "usage_events";
  const records = raw ? "count()" : "sum(records)";
  const tokens = raw ? "sum(tokens_used)" : "sum(tokens)";
  const topic = range === undefined ? "1" : "topic = {topic:String}";
  const result = await client.query({
    query: `SELECT enterprise_id AS app, toString(level) AS lvl, toString(${records}) AS n_records, toString(${tokens}) AS n_tokens,
              toString(sum(cost_micros)) AS n_cost, toString(sum(billed_micros)) AS n_billed,
              toString(sum(creator_share_micros)) AS n_creator, toString(sum(platform_fee_micros)) AS n_fee
            FROM ${quoteIdent(database)}.${CLICKHOUSE_SOURCES[source]}
            WHERE ${raw ? `${topic} AND ${rangeFilter(range)}` : "1"}
            GROUP BY app, lvl`,
    query_params: { topic: range?.topic ?? "" },
    format: "JSONEachRow",
  });
  const totals = new Map<string, UsageTotals>();
  for (const row of await result.json<Row>()) {
    totals.set(usageGroupKey(row.app, row.lvl), {
      enterprise_id: row.app,
      level: row.lvl,
      figures: {
        records: BigInt(row.n_records),
        tokens: BigInt(row.n_tokens),
        cost_micros: BigInt(row.n_cost),
        billed_micros: BigInt(row.n_billed),
        creator_share_micros: BigInt(row.n_creator),
        platform_fee_micros: BigInt(row.n_fee),
      },
    });
  }
  return totals;
}

/** The record_ids stored for one app and level (to name the rows missing or extra). */
export async function readRecordIds(
  client: ClickHouseClient,
  database: string,
  enterpriseId: string,
  level: string,
  range?: TopicRange,
): Promise<string[]> {
  const topic = range === undefined ? "1" : "topic = {topic:String}";
  const result = await client.query({
    query: `SELECT DISTINCT record_id FROM ${quoteIdent(database)}.usage_events FINAL
            WHERE enterprise_id = {enterprise:String} AND level = {level:String} AND ${topic} AND ${rangeFilter(range)}`,
    query_params: { enterprise: enterpriseId, level, topic: range?.topic ?? "" },
    format: "JSONEachRow",
  });
  return (await result.json<{ record_id: string }>()).map((row) => row.record_id);
}
