import { type ClickHouseClient, quoteIdent } from "../../sinks/clickhouse/client.ts";
import { ADJUSTMENT_FIELDS, type AdjustmentField, type Figures, type UsageField } from "./figures.ts";
import type { TopicRange } from "./range.ts";
import { usageGroupKey } from "./recompute.ts";

/** Figures of one app at one level, as a table of ClickHouse sums them. */
export interface GroupTotals<F extends string> {
  enterprise_id: string;
  level: string;
  figures: Figures<F>;
}
export type UsageTotals = GroupTotals<UsageField>;
export type AdjustmentTotals = GroupTotals<AdjustmentField>;

/** The tables compared; the rollups only on a complete audit (they carry no offsets to cut a range by). */
export const CLICKHOUSE_SOURCES = {
  usage_events: "usage_events FINAL",
  usage_by_hour: "usage_by_hour",
  usage_by_minute: "usage_by_minute",
} as const;
export type ClickHouseSource = keyof typeof CLICKHOUSE_SOURCES;

/** The tables that hold one row per record, with its topic position: the rows a difference names. */
export type RowTable = "usage_events" | "adjustments";

/** A WHERE clause selecting the rows of the range's offsets; offsets are validated integers, inlined. */
function rangeFilter(range: TopicRange | undefined): string {
  if (range === undefined) return "1";
  const parts = range.partitions
    .filter((p) => BigInt(p.from) < BigInt(p.to))
    .map((p) => `(partition = ${p.partition} AND offset >= ${BigInt(p.from)} AND offset < ${BigInt(p.to)})`);
  return parts.length === 0 ? "0" : `(${parts.join(" OR ")})`;
}

/**
 * Sums per app and level: `columns` gives each figure's aggregate over `from`. Aliases differ from the
 * column names (`n_<figure>`): ClickHouse resolves an alias before a column of the same name.
 */
async function readTotals<F extends string>(
  client: ClickHouseClient,
  columns: Record<F, string>,
  from: string,
  where: string,
  params: Record<string, string>,
): Promise<Map<string, GroupTotals<F>>> {
  const fields = Object.keys(columns) as F[];
  const selects = fields.map((field) => `toString(${columns[field]}) AS n_${field}`).join(", ");
  const result = await client.query({
    query: `SELECT enterprise_id AS app, toString(level) AS lvl, ${selects}
            FROM ${from} WHERE ${where} GROUP BY app, lvl`,
    query_params: params,
    format: "JSONEachRow",
  });
  const totals = new Map<string, GroupTotals<F>>();
  for (const row of await result.json<Record<string, string>>()) {
    const figures = {} as Figures<F>;
    for (const field of fields) figures[field] = BigInt(row[`n_${field}`]!);
    totals.set(usageGroupKey(row.app!, row.lvl!), { enterprise_id: row.app!, level: row.lvl!, figures });
  }
  return totals;
}

/**
 * Totals per app and level of one table. For usage_events each row is a record; a rollup row already
 * holds sums, hence the two column lists.
 */
export function readUsageTotals(
  client: ClickHouseClient,
  database: string,
  source: ClickHouseSource,
  range?: TopicRange,
): Promise<Map<string, UsageTotals>> {
  const raw = source === "usage_events";
  const columns: Record<UsageField, string> = {
    records: raw ? "count()" : "sum(records)",
    tokens: raw ? "sum(tokens_used)" : "sum(tokens)",
    cost_micros: "sum(cost_micros)",
    billed_micros: "sum(billed_micros)",
    creator_share_micros: "sum(creator_share_micros)",
    platform_fee_micros: "sum(platform_fee_micros)",
  };
  const topic = range === undefined ? "1" : "topic = {topic:String}";
  return readTotals(
    client,
    columns,
    `${quoteIdent(database)}.${CLICKHOUSE_SOURCES[source]}`,
    raw ? `${topic} AND ${rangeFilter(range)}` : "1",
    { topic: range?.topic ?? "" },
  );
}

/**
 * Totals per app and level of the adjustments table (a row per void or refund). Read on a complete audit
 * only: a correction's figures come from the usage record it corrects, which may precede a range.
 */
export function readAdjustmentTotals(
  client: ClickHouseClient,
  database: string,
): Promise<Map<string, AdjustmentTotals>> {
  const columns = {} as Record<AdjustmentField, string>;
  for (const field of ADJUSTMENT_FIELDS) columns[field] = field === "records" ? "count()" : `sum(${field})`;
  return readTotals(client, columns, `${quoteIdent(database)}.adjustments FINAL`, "1", {});
}

/** The record_ids stored in a table for one app and level (to name the rows missing or extra). */
export async function readRecordIds(
  client: ClickHouseClient,
  database: string,
  table: RowTable,
  enterpriseId: string,
  level: string,
  range?: TopicRange,
): Promise<string[]> {
  const topic = range === undefined ? "1" : "topic = {topic:String}";
  const result = await client.query({
    query: `SELECT DISTINCT record_id FROM ${quoteIdent(database)}.${table} FINAL
            WHERE enterprise_id = {enterprise:String} AND level = {level:String} AND ${topic} AND ${rangeFilter(range)}`,
    query_params: { enterprise: enterpriseId, level, topic: range?.topic ?? "" },
    format: "JSONEachRow",
  });
  return (await result.json<{ record_id: string }>()).map((row) => row.record_id);
}
