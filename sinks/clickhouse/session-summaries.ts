import type { SummaryLog } from "../../pipeline/processor/ports.ts";
import { type SessionSummary, TOKEN_CLASSES } from "../../schemas/index.ts";
import { type ClickHouseClient, quoteIdent } from "./client.ts";
import { monthRuns } from "./month-runs.ts";

/**
 * One row per finalized chat (the core's `session_summary` output): its performance metrics.
 * ReplacingMergeTree keyed by the finalize record, and nothing aggregates it incrementally (no MV):
 * a summary re-emitted by a replay is identical, collapses under FINAL, and the views below read FINAL,
 * so a duplicate can never be counted. The table is small (a row per chat), so FINAL costs little.
 */
/**
 * Chat and record ids are unique only within an account: the account is part of the key, or two end
 * users of one app with the same chat and record ids would collapse into one row.
 */
export const SESSION_SUMMARIES_ORDER_BY = "(enterprise_id, workflow_name, account_key, chat_id, record_id)";

export function sessionSummaryStatements(db: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${db}.session_summaries (
      record_id String,
      account_key String,
      level LowCardinality(String),
      enterprise_id String,
      mozaiks_user_id String,
      platform_user_id String,
      session_id String,
      chat_id String,
      workflow_name String,
      started_at DateTime64(3, 'UTC'),
      ended_at DateTime64(3, 'UTC'),
      session_duration_seconds Float64,
      total_tokens UInt64,
      total_cost_micros Int64,
      billed_micros Int64,
      agent_names Array(String),
      agent_prompt_tokens Array(UInt64),
      agent_completion_tokens Array(UInt64),
      agent_total_response_time_ms Array(Float64),
      agent_message_count Array(UInt32),
      agent_avg_response_time_ms Array(Nullable(Float64)),
      ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(ended_at)
    ORDER BY ${SESSION_SUMMARIES_ORDER_BY}
    SETTINGS non_replicated_deduplication_window = 1000`,
    // A finished chat's performance metrics (tokens, cost, duration, per agent); money as exact micros.
    `CREATE VIEW IF NOT EXISTS ${db}.performance_metrics AS
      SELECT
        chat_id, enterprise_id, workflow_name, level, session_id, account_key,
        ended_at AS timestamp,
        total_tokens,
        total_cost_micros,
        toDecimal128(total_cost_micros, 6) / 1000000 AS total_cost,
        session_duration_seconds,
        agent_names AS agents_used,
        mapFromArrays(
          agent_names,
          arrayMap(
            (total, n, average) -> CAST((total, n, average),
              'Tuple(total_response_time_ms Float64, message_count UInt32, avg_response_time_ms Nullable(Float64))'),
            agent_total_response_time_ms, agent_message_count, agent_avg_response_time_ms)
        ) AS agent_performance
      FROM ${db}.session_summaries FINAL`,
    // Per-workflow averages; sums are kept beside the averages so a threshold can be exact.
    `CREATE VIEW IF NOT EXISTS ${db}.workflow_averages AS
      SELECT
        enterprise_id, workflow_name,
        count() AS session_count,
        avg(session_duration_seconds) AS avg_session_duration_seconds,
        sum(total_cost_micros) AS sessions_cost_micros,
        intDiv(sessions_cost_micros, session_count) AS avg_cost_micros,
        toDecimal128(avg_cost_micros, 6) / 1000000 AS avg_cost_per_session,
        sum(total_tokens) AS sessions_tokens,
        avg(total_tokens) AS avg_tokens_per_session,
        avg(length(agent_names)) AS avg_agents_per_session,
        max(ended_at) AS last_updated
      FROM ${db}.session_summaries FINAL
      GROUP BY enterprise_id, workflow_name`,
  ];
}

/**
 * Version 9: the token classes per agent. Rows written before hold empty arrays (as usage_events' rows
 * of before version 8 do): "not reported", which sums as zero.
 */
export function sessionSummaryClassStatements(db: string): string[] {
  return TOKEN_CLASSES.map(
    (c) =>
      `ALTER TABLE ${db}.session_summaries ADD COLUMN IF NOT EXISTS agent_${c} Array(UInt64) DEFAULT [] AFTER agent_completion_tokens`,
  );
}

export function sessionSummaryRow(summary: SessionSummary): Record<string, unknown> {
  const names = Object.keys(summary.agent_performance).sort();
  const agents = names.map((name) => summary.agent_performance[name]!);
  return {
    record_id: summary.record_id,
    account_key: summary.account_key,
    level: summary.level,
    enterprise_id: summary.enterprise_id,
    mozaiks_user_id: summary.mozaiks_user_id,
    platform_user_id: summary.platform_user_id ?? "",
    session_id: summary.session_id,
    chat_id: summary.chat_id,
    workflow_name: summary.workflow_name,
    started_at: summary.started_at,
    ended_at: summary.ended_at,
    session_duration_seconds: summary.session_duration_seconds,
    total_tokens: summary.total_tokens,
    total_cost_micros: summary.total_cost_micros.toString(),
    billed_micros: summary.billed_micros.toString(),
    agent_names: names,
    agent_prompt_tokens: agents.map((agent) => agent.prompt_tokens),
    agent_completion_tokens: agents.map((agent) => agent.completion_tokens),
    agent_cached_prompt_tokens: agents.map((agent) => agent.cached_prompt_tokens ?? 0),
    agent_reasoning_tokens: agents.map((agent) => agent.reasoning_tokens ?? 0),
    agent_audio_tokens: agents.map((agent) => agent.audio_tokens ?? 0),
    agent_total_response_time_ms: agents.map((agent) => agent.total_response_time_ms),
    agent_message_count: agents.map((agent) => agent.message_count),
    agent_avg_response_time_ms: agents.map((agent) => agent.avg_response_time_ms),
  };
}

/**
 * Appends one flush's summaries, not deduplicated: a retry or a replay inserts a second copy, which FINAL
 * collapses (same sorting key, same values). A deduplication token would risk the opposite: a server
 * SIGKILLed mid-insert can keep the token without the part (usage-events.ts), and the retry would be
 * dropped.
 */
export async function appendSessionSummaries(
  client: ClickHouseClient,
  table: string,
  summaries: readonly SessionSummary[],
): Promise<number> {
  if (summaries.length === 0) return 0;
  for (const run of monthRuns(summaries, (summary) => summary.ended_at)) {
    await client.insert({
      table,
      values: run.map(sessionSummaryRow),
      format: "JSONEachRow",
      clickhouse_settings: { insert_deduplicate: 0 },
    });
  }
  return summaries.length;
}

/**
 * The processor's summary log (pipeline/processor/ports.ts). Summaries need no watermark: the table
 * collapses a replayed summary and is read with FINAL only.
 */
export class SessionSummariesSink implements SummaryLog {
  private readonly table: string;

  constructor(
    private readonly client: ClickHouseClient,
    database: string,
  ) {
    this.table = `${quoteIdent(database)}.session_summaries`;
  }

  append(_source: string, _partition: number, summaries: readonly SessionSummary[]): Promise<number> {
    return appendSessionSummaries(this.client, this.table, summaries);
  }
}
