/**
 * Rolling aggregations of usage_events, as materialized views that write into AggregatingMergeTree
 * tables (`MV ... TO target`). One MV per target, each reading the inserted block of usage_events, so a
 * per-hour figure never depends on the per-minute table having been written.
 *
 * Exactly once: every target keeps a deduplication window. The client pins
 * `deduplicate_blocks_in_dependent_materialized_views = 1`, under which a retried insert (same token) is
 * pushed through the MVs again and each target drops the block by a token derived from the source token.
 * A target without a window would count a retried insert twice (measured on ClickHouse 26.7).
 */
import { TOKEN_CLASSES } from "../../schemas/index.ts";
import type { ClickHouseClient } from "./client.ts";

/** Rows of usage_events one rollup grain sees, and how a bucket is cut from `occurred_at`. */
interface Grain {
  suffix: "minute" | "hour";
  bucket: string;
}

const GRAINS: readonly Grain[] = [
  { suffix: "minute", bucket: "toStartOfMinute(occurred_at)" },
  { suffix: "hour", bucket: "toStartOfHour(occurred_at)" },
];

/** A target keeps as many recent insert tokens as usage_events does, so a retry is recognised by both. */
const DEDUP_WINDOW = "non_replicated_deduplication_window = 1000";

// Response times are Nullable per agent (not every runtime reports them); the -Array states take the
// reported ones only, so an average is over answers that have a time.
const REPORTED_TIMES = "CAST(arrayFilter(x -> isNotNull(x), agent_response_time_ms), 'Array(Float64)')";

function usageTarget(db: string, grain: Grain): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.usage_by_${grain.suffix} (
    ${grain.suffix} DateTime('UTC'),
    enterprise_id String,
    workflow_name String,
    level LowCardinality(String),
    mozaiks_user_id String,
    records SimpleAggregateFunction(sum, UInt64),
    tokens SimpleAggregateFunction(sum, UInt64),
    prompt_tokens SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    trial_tokens SimpleAggregateFunction(sum, UInt64),
    paid_tokens SimpleAggregateFunction(sum, UInt64),
    cost_micros SimpleAggregateFunction(sum, Int64),
    billed_micros SimpleAggregateFunction(sum, Int64),
    creator_share_micros SimpleAggregateFunction(sum, Int64),
    platform_fee_micros SimpleAggregateFunction(sum, Int64),
    sessions AggregateFunction(uniq, String),
    accounts AggregateFunction(uniq, String),
    response_ms_avg AggregateFunction(avgArray, Array(Float64)),
    response_ms_p95 AggregateFunction(quantileArray(0.95), Array(Float64))
  )
  ENGINE = AggregatingMergeTree
  PARTITION BY toYYYYMM(${grain.suffix})
  ORDER BY (enterprise_id, workflow_name, level, mozaiks_user_id, ${grain.suffix})
  SETTINGS ${DEDUP_WINDOW}`;
}

/**
 * The token classes (migration 8) are the last columns of both kinds of rollup. Version 2 created the
 * views without them, so each select is built with or without them: a new database first runs
 * version 2's statements against a usage_events that has no class columns yet.
 */
type Classes = "with classes" | "without classes";

/**
 * Since migration 10 each rollup row also names the source partition its rows came from and the highest
 * offset among them (`src_offset`, merged by max): the table's own record of how far it holds each source
 * partition, stored in the same part as the figures (see sourceMarks in usage-events.ts).
 */
type Sourced = "by source partition" | "unsourced";

const SOURCE_COLUMNS = `,
      topic AS src_topic,
      partition AS src_partition,
      max(offset) AS src_offset`;

function usageSelect(from: string, grain: Grain, classes: Classes, sourced: Sourced = "unsourced"): string {
  const classSums =
    classes === "with classes"
      ? `,
      sum(cached_prompt_tokens) AS cached_prompt_tokens,
      sum(reasoning_tokens) AS reasoning_tokens,
      sum(audio_tokens) AS audio_tokens`
      : "";
  return `SELECT
      ${grain.bucket} AS ${grain.suffix},
      enterprise_id, workflow_name, level, mozaiks_user_id,
      count() AS records,
      sum(tokens_used) AS tokens,
      sum(prompt_tokens) AS prompt_tokens,
      sum(completion_tokens) AS completion_tokens,
      sum(trial_tokens_used) AS trial_tokens,
      sum(paid_tokens_used) AS paid_tokens,
      sum(cost_micros) AS cost_micros,
      sum(billed_micros) AS billed_micros,
      sum(creator_share_micros) AS creator_share_micros,
      sum(platform_fee_micros) AS platform_fee_micros,
      uniqState(session_id) AS sessions,
      uniqState(account_key) AS accounts,
      avgArrayState(${REPORTED_TIMES}) AS response_ms_avg,
      quantileArrayState(0.95)(${REPORTED_TIMES}) AS response_ms_p95${classSums}${sourced === "by source partition" ? SOURCE_COLUMNS : ""}
    FROM ${from}
    GROUP BY ${grain.suffix}, enterprise_id, workflow_name, level, mozaiks_user_id${sourced === "by source partition" ? ", topic, partition" : ""}`;
}

function agentTarget(db: string, grain: Grain): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.agent_usage_by_${grain.suffix} (
    ${grain.suffix} DateTime('UTC'),
    enterprise_id String,
    workflow_name String,
    level LowCardinality(String),
    agent_name String,
    agent_model LowCardinality(String),
    calls SimpleAggregateFunction(sum, UInt64),
    messages SimpleAggregateFunction(sum, UInt64),
    prompt_tokens SimpleAggregateFunction(sum, UInt64),
    completion_tokens SimpleAggregateFunction(sum, UInt64),
    sessions AggregateFunction(uniq, String),
    response_ms_avg AggregateFunction(avgIf, Float64, UInt8),
    response_ms_p95 AggregateFunction(quantileIf(0.95), Float64, UInt8)
  )
  ENGINE = AggregatingMergeTree
  PARTITION BY toYYYYMM(${grain.suffix})
  ORDER BY (enterprise_id, workflow_name, level, agent_name, agent_model, ${grain.suffix})
  SETTINGS ${DEDUP_WINDOW}`;
}

// Rows written before migration 8 have empty class arrays; ARRAY JOIN needs every array as long as
// the agent names, so the class arrays are padded with zeros (what those rows reported).
const CLASS_ARRAYS = ["cached_prompt", "reasoning", "audio"] as const;

function agentSelect(from: string, grain: Grain, classes: Classes, sourced: Sourced = "unsourced"): string {
  const withClasses = classes === "with classes";
  const classSums = withClasses
    ? CLASS_ARRAYS.map((c) => `,\n      sum(agent_${c}) AS ${c}_tokens`).join("")
    : "";
  const classJoins = withClasses
    ? CLASS_ARRAYS.map(
        (c) => `,\n      arrayResize(agent_${c}_tokens, length(agent_names)) AS agent_${c}`,
      ).join("")
    : "";
  return `SELECT
      ${grain.bucket} AS ${grain.suffix},
      enterprise_id, workflow_name, level, agent_name, agent_model,
      count() AS calls,
      sum(agent_messages) AS messages,
      sum(agent_prompt) AS prompt_tokens,
      sum(agent_completion) AS completion_tokens,
      uniqState(session_id) AS sessions,
      avgIfState(assumeNotNull(agent_rt), isNotNull(agent_rt)) AS response_ms_avg,
      quantileIfState(0.95)(assumeNotNull(agent_rt), isNotNull(agent_rt)) AS response_ms_p95${classSums}${sourced === "by source partition" ? SOURCE_COLUMNS : ""}
    FROM ${from}
    ARRAY JOIN
      agent_names AS agent_name,
      agent_models AS agent_model,
      agent_prompt_tokens AS agent_prompt,
      agent_completion_tokens AS agent_completion,
      agent_response_time_ms AS agent_rt,
      agent_message_count AS agent_messages${classJoins}
    GROUP BY ${grain.suffix}, enterprise_id, workflow_name, level, agent_name, agent_model${sourced === "by source partition" ? ", topic, partition" : ""}`;
}

/**
 * A database upgraded from version 1 may already hold raw rows: each target is filled from
 * `usage_events FINAL` while it is still empty, then its MV starts. Rows inserted between the two
 * statements would be missed, so the upgrade runs with the processors stopped (applyMigrations runs
 * before a processor consumes; see docs/analytics.md). On a new database the backfill inserts nothing.
 */
function backfill(db: string, table: string, select: string): string {
  return `INSERT INTO ${db}.${table} ${select.replace(/\n\s*GROUP BY/, `\n    WHERE (SELECT count() FROM ${db}.${table}) = 0\n    GROUP BY`)}`;
}

export function rollupStatements(db: string): string[] {
  const statements: string[] = [];
  for (const grain of GRAINS) {
    const usage = `usage_by_${grain.suffix}`;
    statements.push(
      usageTarget(db, grain),
      backfill(db, usage, usageSelect(`${db}.usage_events FINAL`, grain, "without classes")),
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${usage}_mv TO ${db}.${usage} AS ${usageSelect(`${db}.usage_events`, grain, "without classes")}`,
    );
    const agent = `agent_usage_by_${grain.suffix}`;
    statements.push(
      agentTarget(db, grain),
      backfill(db, agent, agentSelect(`${db}.usage_events FINAL`, grain, "without classes")),
      `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${agent}_mv TO ${db}.${agent} AS ${agentSelect(`${db}.usage_events`, grain, "without classes")}`,
    );
  }
  return statements;
}

/**
 * Migration 8: the token classes in usage_events (per record and per agent) and in every rollup. The
 * views' queries are replaced in place (`MODIFY QUERY`, idempotent: the same query again changes
 * nothing); the rollups' rows from before keep 0 for the classes, which is what usage_events held.
 */
export function tokenClassStatements(db: string): string[] {
  const statements = [
    ...TOKEN_CLASSES.map(
      (c) => `ALTER TABLE ${db}.usage_events ADD COLUMN IF NOT EXISTS ${c} UInt64 DEFAULT 0`,
    ),
    ...TOKEN_CLASSES.map(
      (c) => `ALTER TABLE ${db}.usage_events ADD COLUMN IF NOT EXISTS agent_${c} Array(UInt64) DEFAULT []`,
    ),
  ];
  for (const grain of GRAINS) {
    for (const [table, select] of [
      [`usage_by_${grain.suffix}`, usageSelect(`${db}.usage_events`, grain, "with classes")],
      [`agent_usage_by_${grain.suffix}`, agentSelect(`${db}.usage_events`, grain, "with classes")],
    ] as const) {
      for (const c of TOKEN_CLASSES) {
        statements.push(
          `ALTER TABLE ${db}.${table} ADD COLUMN IF NOT EXISTS ${c} SimpleAggregateFunction(sum, UInt64) DEFAULT 0`,
        );
      }
      statements.push(`ALTER TABLE ${db}.${table}_mv MODIFY QUERY ${select}`);
    }
  }
  return statements;
}

/** The four rollups, each with its query over a source of usage rows (a table or a subquery). */
export interface Rollup {
  table: string;
  /** Its time bucket column (minute or hour), whose month is the table's partition. */
  bucket: string;
  select: (from: string) => string;
  /** What it counts, summed over its rows, and the same counted over raw usage rows. */
  tally: { rollup: string; raw: string };
}

export const ROLLUPS: readonly Rollup[] = GRAINS.flatMap((grain) => [
  {
    table: `usage_by_${grain.suffix}`,
    bucket: grain.suffix,
    tally: { rollup: "sum(records)", raw: "count()" },
    select: (from: string) => usageSelect(from, grain, "with classes", "by source partition"),
  },
  {
    table: `agent_usage_by_${grain.suffix}`,
    bucket: grain.suffix,
    tally: { rollup: "sum(calls)", raw: "sum(length(agent_names))" },
    select: (from: string) => agentSelect(from, grain, "with classes", "by source partition"),
  },
]);

/**
 * Migration 10: every table of usage rows is fed from one insert into `usage_ingest` (engine Null, no
 * storage), through a view each: usage_events and the four rollups are siblings, so any one of them can be
 * written alone (a repair) without the others counting it again. The rollups record their source
 * partitions (src_topic, src_partition, src_offset) and are rebuilt from `usage_events FINAL`, which also
 * sets those marks for the rows they held. Run with the processors stopped, as version 2 is.
 */
export async function sourcedRollups(client: ClickHouseClient, db: string, database: string): Promise<void> {
  for (const { table } of ROLLUPS) {
    const result = await client.query({
      query:
        "SELECT sorting_key FROM system.tables WHERE database = {database:String} AND name = {table:String}",
      query_params: { database, table },
      format: "JSONEachRow",
    });
    const [row] = await result.json<{ sorting_key: string }>();
    if (row === undefined || row.sorting_key.includes("src_partition")) continue;
    // A column added to a sorting key may not have a default; existing rows read '' and 0.
    await client.command({
      query: `ALTER TABLE ${db}.${table}
        ADD COLUMN IF NOT EXISTS src_topic LowCardinality(String),
        ADD COLUMN IF NOT EXISTS src_partition UInt32,
        ADD COLUMN IF NOT EXISTS src_offset SimpleAggregateFunction(max, UInt64),
        MODIFY ORDER BY (${row.sorting_key}, src_topic, src_partition)`,
    });
  }
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.usage_ingest AS ${db}.usage_events ENGINE = Null`,
  });
  for (const { table, select } of ROLLUPS) {
    await client.command({ query: `DROP VIEW IF EXISTS ${db}.${table}_mv` });
    await client.command({
      query: `CREATE MATERIALIZED VIEW ${db}.${table}_mv TO ${db}.${table} AS ${select(`${db}.usage_ingest`)}`,
    });
  }
  await client.command({
    query: `CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.usage_events_mv TO ${db}.usage_events AS SELECT * FROM ${db}.usage_ingest`,
  });
  for (const { table, select } of ROLLUPS) {
    await client.command({ query: `TRUNCATE TABLE ${db}.${table}` });
    // Not deduplicated: a rerun of this step after a crash must store its blocks again.
    await client.command({
      query: `INSERT INTO ${db}.${table} ${select(`${db}.usage_events FINAL`)}`,
      clickhouse_settings: { insert_deduplicate: 0 },
    });
  }
}
