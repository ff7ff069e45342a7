import type { ClickHouseClient } from "./client.ts";
import { quoteIdent } from "./client.ts";
import { partitionProgressStatements } from "./partition-progress.ts";
import { rollupStatements, sourcedRollups, tokenClassStatements } from "./rollups.ts";
import {
  SESSION_SUMMARIES_ORDER_BY,
  sessionSummaryClassStatements,
  sessionSummaryStatements,
} from "./session-summaries.ts";

export interface Migration {
  version: number;
  name: string;
  /** Each statement is idempotent (IF NOT EXISTS), so a half-applied migration can simply run again. */
  statements: (db: string) => string[];
  /** Or code, for a change that must look before it acts; idempotent too. */
  run?: (client: ClickHouseClient, db: string, database: string) => Promise<void>;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "usage_events",
    statements: (db) => [
      `CREATE TABLE IF NOT EXISTS ${db}.usage_events (
        topic LowCardinality(String),
        partition UInt32,
        offset UInt64,
        record_id String,
        level LowCardinality(String),
        enterprise_id String,
        mozaiks_user_id String,
        platform_user_id String,
        user_id String,
        account_key String,
        workflow_type LowCardinality(String),
        workflow_name String,
        session_id String,
        chat_id String,
        occurred_at DateTime64(3, 'UTC'),
        prompt_tokens UInt64,
        completion_tokens UInt64,
        tokens_used UInt64,
        trial_tokens_used UInt64,
        paid_tokens_used UInt64,
        cost_micros Int64,
        billed_micros Int64,
        creator_share_micros Int64,
        platform_fee_micros Int64,
        decision LowCardinality(String),
        billing_target LowCardinality(String),
        price_id LowCardinality(String),
        agent_names Array(String),
        agent_models Array(LowCardinality(String)),
        agent_prompt_tokens Array(UInt64),
        agent_completion_tokens Array(UInt64),
        agent_response_time_ms Array(Nullable(Float64)),
        agent_message_count Array(UInt32),
        ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
      )
      ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(occurred_at)
      ORDER BY (enterprise_id, level, occurred_at, account_key, record_id)
      SETTINGS non_replicated_deduplication_window = 1000`,
    ],
  },
  {
    version: 2,
    name: "usage rollups per minute and hour, per agent",
    statements: rollupStatements,
  },
  {
    version: 3,
    name: "session_summaries, performance_metrics, workflow_averages",
    statements: sessionSummaryStatements,
  },
  {
    version: 4,
    name: "usage_events skip indexes for one chat or one account",
    // The sorting key starts with the app and time; these let a lookup by chat or account skip granules.
    statements: (db) => [
      `ALTER TABLE ${db}.usage_events ADD INDEX IF NOT EXISTS idx_chat_id chat_id TYPE bloom_filter(0.01) GRANULARITY 4`,
      `ALTER TABLE ${db}.usage_events ADD INDEX IF NOT EXISTS idx_account_key account_key TYPE bloom_filter(0.01) GRANULARITY 4`,
    ],
  },
  {
    version: 5,
    name: "session_summaries keyed by account (chat and record ids repeat across tenants)",
    statements: () => [],
    run: rekeySessionSummaries,
  },
  {
    version: 6,
    name: "partition_progress: one row per flush (offsets covered, applied, skipped, dead-lettered)",
    statements: partitionProgressStatements,
  },
  {
    version: 7,
    name: "adjustments: one row per void or refund, amounts negative, dated when the correction happened",
    // Corrections are shown as adjustments in the month they happen, never as edits of the usage rows
    // they correct (those stay as billed): a month's net is its usage rows plus its adjustment rows.
    statements: (db) => [
      `CREATE TABLE IF NOT EXISTS ${db}.adjustments (
        topic LowCardinality(String),
        partition UInt32,
        offset UInt64,
        record_id String,
        adjustment LowCardinality(String),
        target_record_id String,
        target_occurred_at DateTime64(3, 'UTC'),
        level LowCardinality(String),
        enterprise_id String,
        mozaiks_user_id String,
        platform_user_id String,
        account_key String,
        chat_id String,
        occurred_at DateTime64(3, 'UTC'),
        billing_target LowCardinality(String),
        trial_tokens Int64,
        paid_tokens Int64,
        grant_tokens Int64,
        cost_micros Int64,
        billed_micros Int64,
        creator_share_micros Int64,
        platform_fee_micros Int64,
        creator_share_bp UInt32,
        ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
      )
      ENGINE = ReplacingMergeTree
      PARTITION BY toYYYYMM(occurred_at)
      ORDER BY (enterprise_id, level, occurred_at, account_key, record_id)
      SETTINGS non_replicated_deduplication_window = 1000`,
    ],
  },
  {
    version: 8,
    name: "token classes (cached prompt, reasoning, audio) in usage_events and the rollups",
    statements: tokenClassStatements,
  },
  {
    version: 9,
    name: "token classes per agent in session_summaries",
    statements: sessionSummaryClassStatements,
  },
  {
    version: 10,
    name: "usage rows fed through usage_ingest to usage_events and each rollup; rollups mark their source partitions",
    // A column added to usage_events later must be added to usage_ingest too, and usage_events_mv made again.
    statements: () => [],
    run: sourcedRollups,
  },
];

/**
 * A sorting key cannot take a column in the middle, so the table is rebuilt beside the old one and the
 * two are exchanged atomically; the views read it by name. Skipped where the key already has the account
 * (databases created since version 3 took the new key).
 */
async function rekeySessionSummaries(client: ClickHouseClient, db: string, database: string): Promise<void> {
  const result = await client.query({
    query:
      "SELECT sorting_key FROM system.tables WHERE database = {database:String} AND name = 'session_summaries'",
    query_params: { database },
    format: "JSONEachRow",
  });
  const [table] = await result.json<{ sorting_key: string }>();
  if (table === undefined || table.sorting_key.includes("account_key")) return;
  const rebuilt = `${db}.session_summaries_rekeyed`;
  await client.command({ query: `DROP TABLE IF EXISTS ${rebuilt}` });
  await client.command({
    query: `CREATE TABLE ${rebuilt} AS ${db}.session_summaries ENGINE = ReplacingMergeTree PARTITION BY toYYYYMM(ended_at) ORDER BY ${SESSION_SUMMARIES_ORDER_BY} SETTINGS non_replicated_deduplication_window = 1000`,
  });
  await client.command({ query: `INSERT INTO ${rebuilt} SELECT * FROM ${db}.session_summaries` });
  await client.command({ query: `EXCHANGE TABLES ${db}.session_summaries AND ${rebuilt}` });
  await client.command({ query: `DROP TABLE ${rebuilt}` });
}

/**
 * Applies the versions not yet recorded in `schema_migrations`, in order, up to `upTo` (default all: a
 * lower bound builds a database as an older release left it, for upgrade tests). Returns those applied.
 */
export async function applyMigrations(
  client: ClickHouseClient,
  database: string,
  upTo = Number.POSITIVE_INFINITY,
): Promise<number[]> {
  const db = quoteIdent(database);
  await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
  await client.command({
    query: `CREATE TABLE IF NOT EXISTS ${db}.schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
            ENGINE = ReplacingMergeTree ORDER BY version`,
  });
  const result = await client.query({
    query: `SELECT DISTINCT version FROM ${db}.schema_migrations`,
    format: "JSONEachRow",
  });
  const applied = new Set((await result.json<{ version: number }>()).map((row) => Number(row.version)));
  const newlyApplied: number[] = [];
  for (const migration of MIGRATIONS) {
    if (applied.has(migration.version) || migration.version > upTo) continue;
    for (const statement of migration.statements(db)) await client.command({ query: statement });
    await migration.run?.(client, db, database);
    await client.insert({
      table: `${db}.schema_migrations`,
      values: [{ version: migration.version, name: migration.name }],
      format: "JSONEachRow",
    });
    newlyApplied.push(migration.version);
  }
  return newlyApplied;
}
