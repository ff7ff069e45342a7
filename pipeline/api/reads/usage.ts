import { MAX_USAGE_ROWS, type UsageQuery, type UsageResponse, type UsageRow } from "../../../schemas/api.ts";
import { type ClickHouseClient, quoteIdent } from "../../../sinks/clickhouse/client.ts";
import { money } from "../money.ts";
import { ApiProblem } from "../problem.ts";

/** How a bucket is cut: from the minute rollup for minutes, from the hour rollup for the rest. */
const BUCKETS: Record<UsageQuery["window"], { grain: "minute" | "hour"; of: (column: string) => string }> = {
  minute: { grain: "minute", of: (column) => `toStartOfMinute(${column})` },
  hour: { grain: "hour", of: (column) => `toStartOfHour(${column})` },
  day: { grain: "hour", of: (column) => `toDateTime(toStartOfDay(${column}), 'UTC')` },
  month: { grain: "hour", of: (column) => `toDateTime(toStartOfMonth(${column}), 'UTC')` },
};

interface Source {
  table: string;
  time: string;
  group: string | null;
  measures: string;
  /** Whether the rows carry money (the agent rollups do not). */
  money: boolean;
}

const USAGE_MEASURES = `sum(records) AS records, sum(tokens) AS tokens,
  sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion,
  toString(sum(cost_micros)) AS cost, toString(sum(billed_micros)) AS billed,
  toString(sum(creator_share_micros)) AS creator, toString(sum(platform_fee_micros)) AS fee,
  avgArrayMerge(response_ms_avg) AS avg_ms`;

const AGENT_MEASURES = `sum(calls) AS records, sum(prompt_tokens) + sum(completion_tokens) AS tokens,
  sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion,
  '' AS cost, '' AS billed, '' AS creator, '' AS fee,
  avgIfMerge(response_ms_avg) AS avg_ms`;

const RAW_MEASURES = `count() AS records, sum(tokens_used) AS tokens,
  sum(prompt_tokens) AS prompt, sum(completion_tokens) AS completion,
  toString(sum(cost_micros)) AS cost, toString(sum(billed_micros)) AS billed,
  toString(sum(creator_share_micros)) AS creator, toString(sum(platform_fee_micros)) AS fee,
  avgArray(CAST(arrayFilter(x -> isNotNull(x), agent_response_time_ms), 'Array(Float64)')) AS avg_ms`;

const RAW_AGENT_MEASURES = `count() AS records, sum(agent_prompt) + sum(agent_completion) AS tokens,
  sum(agent_prompt) AS prompt, sum(agent_completion) AS completion,
  '' AS cost, '' AS billed, '' AS creator, '' AS fee,
  avgIf(assumeNotNull(agent_rt), isNotNull(agent_rt)) AS avg_ms`;

const RAW_AGENTS = `usage_events FINAL ARRAY JOIN agent_names AS agent_name, agent_models AS agent_model,
  agent_prompt_tokens AS agent_prompt, agent_completion_tokens AS agent_completion, agent_response_time_ms AS agent_rt`;

/**
 * Where each grouping is answered. The rollups hold no end user (they aggregate accounts away), so
 * per end user reads the raw events, FINAL for exact figures. The agent rollups hold no creator either:
 * read for one creator (`scoped`), per agent and per model read the raw events too.
 */
function sourceOf(query: UsageQuery, scoped: boolean): Source {
  const grain = BUCKETS[query.window].grain;
  switch (query.group_by) {
    case "agent":
    case "model":
      if (scoped) {
        return {
          table: RAW_AGENTS,
          time: "occurred_at",
          group: query.group_by === "agent" ? "agent_name" : "agent_model",
          measures: RAW_AGENT_MEASURES,
          money: false,
        };
      }
      return {
        table: `agent_usage_by_${grain}`,
        time: grain,
        group: query.group_by === "agent" ? "agent_name" : "agent_model",
        measures: AGENT_MEASURES,
        money: false,
      };
    case "end_user":
      return {
        table: "usage_events FINAL",
        time: "occurred_at",
        group: "platform_user_id",
        measures: RAW_MEASURES,
        money: true,
      };
    case "workflow":
      return {
        table: `usage_by_${grain}`,
        time: grain,
        group: "workflow_name",
        measures: USAGE_MEASURES,
        money: true,
      };
    case undefined:
      return { table: `usage_by_${grain}`, time: grain, group: null, measures: USAGE_MEASURES, money: true };
  }
}

interface Row {
  bucket: string;
  grp: string;
  records: string;
  tokens: string;
  prompt: string;
  completion: string;
  cost: string;
  billed: string;
  creator: string;
  fee: string;
  avg_ms: number | string | null;
}

function isoOf(clickhouseTime: string): string {
  return `${clickhouseTime.replace(" ", "T")}Z`;
}

/** A ClickHouse average (a number, or a string for wide types; null when nothing was timed) to one decimal. */
export function averageOf(value: number | string | null): number | null {
  const n = typeof value === "string" ? Number(value) : value;
  return n === null || !Number.isFinite(n) ? null : Math.round(n * 10) / 10;
}

/**
 * An app's usage in [from, to), bucketed by `window` and split by `group_by`; parameters bound, never
 * spliced. With `creator`, only that creator's records (creatorScopeOf). An answer of more than `maxRows`
 * rows is REQUEST_INVALID (one more row is read to tell).
 */
export async function appUsage(
  client: ClickHouseClient,
  database: string,
  enterpriseId: string,
  query: UsageQuery,
  creator: string | null,
  maxRows = MAX_USAGE_ROWS,
): Promise<UsageResponse> {
  const source = sourceOf(query, creator !== null);
  const bucket = BUCKETS[query.window].of(source.time);
  const group = source.group ?? "''";
  const result = await client.query({
    query: `SELECT toString(${bucket}) AS bucket, ${group} AS grp, ${source.measures}
            FROM ${quoteIdent(database)}.${source.table}
            WHERE enterprise_id = {app:String} AND level = {level:String}
              ${creator === null ? "" : "AND mozaiks_user_id = {creator:String}"}
              AND ${source.time} >= parseDateTime64BestEffort({from:String}, 3, 'UTC')
              AND ${source.time} < parseDateTime64BestEffort({to:String}, 3, 'UTC')
            GROUP BY bucket, grp
            ORDER BY bucket, grp
            LIMIT {limit:UInt32}`,
    query_params: {
      app: enterpriseId,
      level: query.level,
      from: query.from,
      to: query.to,
      limit: maxRows + 1,
      ...(creator === null ? {} : { creator }),
    },
    format: "JSONEachRow",
  });
  const rows = await result.json<Row>();
  if (rows.length > maxRows) {
    throw new ApiProblem(
      "REQUEST_INVALID",
      `the answer holds more than ${maxRows} rows (buckets x groups): use a larger window, a shorter range or another group_by`,
      ["from", "to", "window", "group_by"],
    );
  }
  const amount = (micros: string) => (source.money ? money(BigInt(micros)) : null);
  return {
    enterprise_id: enterpriseId,
    from: query.from,
    to: query.to,
    window: query.window,
    group_by: query.group_by ?? null,
    level: query.level,
    rows: rows.map(
      (row): UsageRow => ({
        bucket: isoOf(row.bucket),
        group: source.group === null ? null : row.grp,
        records: Number(row.records),
        tokens: Number(row.tokens),
        prompt_tokens: Number(row.prompt),
        completion_tokens: Number(row.completion),
        cost: amount(row.cost),
        billed: amount(row.billed),
        creator_share: amount(row.creator),
        platform_fee: amount(row.fee),
        avg_response_ms: averageOf(row.avg_ms),
      }),
    ),
  };
}
