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

/**
 * Which rows a read takes: those stored under `source` (the name of the audited incarnation of the
 * topic: sourceName in sinks/mongo/topic-registry.ts), and, given `offsets`, only those of its range.
 * Without a scope, every row of the table (test harnesses that compare a whole namespace).
 */
export interface RowScope {
  source: string;
  /** Only the rows of these offsets (a delta audit); absent: every offset of the source. */
  offsets?: TopicRange;
}

/** A WHERE clause selecting the rows of the range's offsets; offsets are validated integers, inlined. */
function rangeFilter(range: TopicRange | undefined): string {
  if (range === undefined) return "1";
  const parts = range.partitions
    .filter((p) => BigInt(p.from) < BigInt(p.to))
    .map((p) => `(partition = ${p.partition} AND offset >= ${BigInt(p.from)} AND offset < ${BigInt(p.to)})`);
  return parts.length === 0 ? "0" : `(${parts.join(" OR ")})`;
}

/**
 * The WHERE clause of a scope over a table of rows (`topic`, `partition`, `offset`) or a rollup
 * (`src_topic`; it has no offsets, so a rollup is read whole for its source), and its parameters.
 */
export function scopeFilter(
  scope: RowScope | undefined,
  table: "rows" | "rollup",
): { where: string; params: Record<string, string> } {
  if (scope === undefined) return { where: "1", params: {} };
  if (table === "rollup") {
    if (scope.offsets !== undefined) throw new Error("audit: a rollup has no offsets to cut a range by");
    return { where: "src_topic = {source:String}", params: { source: scope.source } };
  }
  return {
    where: `topic = {source:String} AND ${rangeFilter(scope.offsets)}`,
    params: { source: scope.source },
  };
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
 * Totals per app and level of one table, of the rows of `scope`. For usage_events each row is a record;
 * a rollup row already holds sums, hence the two column lists.
 */
export function readUsageTotals(
  client: ClickHouseClient,
  database: string,
  source: ClickHouseSource,
  scope?: RowScope,
): Promise<Map<string, UsageTotals>> {
  const raw = source === "usage_events";
  const columns: Record<UsageField, string> = {
    records: raw ? "count()" : "sum(records)",
    tokens: raw ? "sum(tokens_used)" : "sum(tokens)",
    trial_tokens: raw ? "sum(trial_tokens_used)" : "sum(trial_tokens)",
    paid_tokens: raw ? "sum(paid_tokens_used)" : "sum(paid_tokens)",
    cost_micros: "sum(cost_micros)",
    billed_micros: "sum(billed_micros)",
    creator_share_micros: "sum(creator_share_micros)",
    platform_fee_micros: "sum(platform_fee_micros)",
  };
  const { where, params } = scopeFilter(scope, raw ? "rows" : "rollup");
  return readTotals(client, columns, `${quoteIdent(database)}.${CLICKHOUSE_SOURCES[source]}`, where, params);
}

/**
 * Totals per app and level of the adjustments table (a row per void or refund). Read on a complete audit
 * only: a correction's figures come from the usage record it corrects, which may precede a range.
 */
export function readAdjustmentTotals(
  client: ClickHouseClient,
  database: string,
  scope?: RowScope,
): Promise<Map<string, AdjustmentTotals>> {
  const columns = {} as Record<AdjustmentField, string>;
  for (const field of ADJUSTMENT_FIELDS) columns[field] = field === "records" ? "count()" : `sum(${field})`;
  const { where, params } = scopeFilter(scope, "rows");
  return readTotals(client, columns, `${quoteIdent(database)}.adjustments FINAL`, where, params);
}

/** A row's record: its account and record_id (a record id is unique per account only). */
export interface StoredRowId {
  account_key: string;
  record_id: string;
}

/**
 * The records stored in a table for one app and level, of the rows of `scope` (to name the rows missing
 * or extra): each (account, record_id) once. Not the record_ids alone: two accounts of an app may both
 * have a record `r1`, and one's row would hide that the other's is missing.
 */
export async function readRecordIds(
  client: ClickHouseClient,
  database: string,
  table: RowTable,
  enterpriseId: string,
  level: string,
  scope?: RowScope,
): Promise<StoredRowId[]> {
  const { where, params } = scopeFilter(scope, "rows");
  const result = await client.query({
    query: `SELECT DISTINCT account_key, record_id FROM ${quoteIdent(database)}.${table} FINAL
            WHERE enterprise_id = {enterprise:String} AND level = {level:String} AND ${where}`,
    query_params: { ...params, enterprise: enterpriseId, level },
    format: "JSONEachRow",
  });
  return (await result.json<StoredRowId>()).map((row) => ({
    account_key: row.account_key,
    record_id: row.record_id,
  }));
}

/**
 * The newest incarnation of `topic` with rows in usage_events (`topic` is 0, `topic~N` is N): where the
 * registry (AgentmeterTopics in MongoDB) cannot be read, what the stores show the processor wrote last.
 */
export async function readNewestIncarnation(
  client: ClickHouseClient,
  database: string,
  topic: string,
): Promise<number> {
  const result = await client.query({
    query: `SELECT DISTINCT topic AS name FROM ${quoteIdent(database)}.usage_events
            WHERE topic = {topic:String} OR startsWith(topic, {later:String})`,
    query_params: { topic, later: `${topic}~` },
    format: "JSONEachRow",
  });
  return newestIncarnation(
    topic,
    (await result.json<{ name: string }>()).map((row) => row.name),
  );
}

/** The highest N among source names `topic` (0) and `topic~N`; 0 when none. */
export function newestIncarnation(topic: string, names: readonly string[]): number {
  let newest = 0;
  for (const name of names) {
    if (!name.startsWith(`${topic}~`)) continue;
    const tail = name.slice(topic.length + 1);
    if (/^[1-9][0-9]{0,8}$/.test(tail)) newest = Math.max(newest, Number(tail));
  }
  return newest;
}
