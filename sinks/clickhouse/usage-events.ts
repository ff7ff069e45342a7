import { setTimeout as sleep } from "node:timers/promises";
import type { FlushProgress, PositionedOutcome, UsageLog } from "../../pipeline/processor/ports.ts";
import { type TopicPartitionKey, topicPartitionKeyOf } from "../../schemas/keys.ts";
import type { ClickHouseClient } from "./client.ts";
import { quoteIdent } from "./client.ts";
import { monthRuns as runsByMonth } from "./month-runs.ts";
import { appendProgress } from "./partition-progress.ts";

const WATERMARK_REREAD_MS = 200;

export { MONTHS_PER_INSERT } from "./month-runs.ts";

/** Usage rows in inserts of at most MONTHS_PER_INSERT months each (month-runs.ts). */
export function monthRuns(rows: readonly PositionedOutcome[]): PositionedOutcome[][] {
  return runsByMonth(rows, (row) => row.outcome.occurred_at);
}

/** One row per usage record, per-agent detail in parallel arrays (ARRAY JOIN for per-agent views). */
export function usageEventRow({ position, outcome }: PositionedOutcome): Record<string, unknown> {
  const agents = Object.entries(outcome.agents).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return {
    topic: position.topic,
    partition: position.partition,
    offset: position.offset,
    record_id: outcome.record_id,
    level: outcome.level,
    enterprise_id: outcome.enterprise_id,
    mozaiks_user_id: outcome.mozaiks_user_id,
    platform_user_id: outcome.platform_user_id ?? "",
    user_id: outcome.user_id ?? "",
    account_key: outcome.account_key,
    workflow_type: outcome.workflow_type,
    workflow_name: outcome.workflow_name,
    session_id: outcome.session_id,
    chat_id: outcome.chat_id,
    occurred_at: outcome.occurred_at,
    prompt_tokens: outcome.prompt_tokens,
    completion_tokens: outcome.completion_tokens,
    tokens_used: outcome.tokens_used,
    trial_tokens_used: outcome.trial_tokens_used,
    paid_tokens_used: outcome.paid_tokens_used,
    cost_micros: outcome.cost_micros.toString(),
    billed_micros: outcome.billed_micros.toString(),
    creator_share_micros: outcome.creator_share_micros.toString(),
    platform_fee_micros: outcome.platform_fee_micros.toString(),
    decision: outcome.decision,
    billing_target: outcome.billing_target,
    price_id: outcome.price_ids.join(","),
    agent_names: agents.map(([name]) => name),
    agent_models: agents.map(([, agent]) => agent.model),
    agent_prompt_tokens: agents.map(([, agent]) => agent.prompt_tokens),
    agent_completion_tokens: agents.map(([, agent]) => agent.completion_tokens),
    agent_response_time_ms: agents.map(([, agent]) => agent.response_time_ms ?? null),
    agent_message_count: agents.map(([, agent]) => agent.message_count ?? 0),
  };
}

/**
 * Appends usage rows exactly once per log position. Inserts for one partition come from its single owner,
 * in offset order, each insert atomic; so the highest offset stored for a partition is a precise
 * watermark, read once when the partition is (re)assigned. A retried insert also carries a deduplication
 * token made of its offset range, so a lost response followed by a retry is dropped by the server.
 */
export class UsageEventsSink implements UsageLog {
  private readonly watermarks = new Map<TopicPartitionKey, bigint>();
  private readonly table: string;
  private readonly progressTable: string;

  constructor(
    private readonly client: ClickHouseClient,
    database: string,
  ) {
    this.table = `${quoteIdent(database)}.usage_events`;
    this.progressTable = `${quoteIdent(database)}.partition_progress`;
  }

  /** Forget what is known of a partition (on revocation), so the next owner reads the watermark afresh. */
  forget(topic: string, partition: number): void {
    this.watermarks.delete(topicPartitionKeyOf(topic, partition));
  }

  forgetAll(): void {
    this.watermarks.clear();
  }

  async watermark(topic: string, partition: number): Promise<bigint> {
    const key = topicPartitionKeyOf(topic, partition);
    const known = this.watermarks.get(key);
    if (known !== undefined) return known;
    // Read twice, a moment apart, and keep the higher: the local engine (chdb 26.7) was seen to show a
    // table with none of its parts for an instant while a merge swapped them in, and a watermark read
    // low would insert rows again. A watermark only grows, so the higher read is the true one.
    const first = await this.readWatermark(topic, partition);
    await sleep(WATERMARK_REREAD_MS);
    const second = await this.readWatermark(topic, partition);
    let value = first;
    if (second > value) value = second;
    this.watermarks.set(key, value);
    return value;
  }

  /** The highest offset stored for a source partition (-1: none), read afresh and not cached. */
  storedWatermark(topic: string, partition: number): Promise<bigint> {
    return this.readWatermark(topic, partition);
  }

  private async readWatermark(topic: string, partition: number): Promise<bigint> {
    const result = await this.client.query({
      query: `SELECT toString(max(offset)) AS max_offset, count() AS n FROM ${this.table} WHERE topic = {topic:String} AND partition = {partition:UInt32}`,
      query_params: { topic, partition },
      format: "JSONEachRow",
    });
    const [row] = await result.json<{ max_offset: string; n: string }>();
    return row === undefined || row.n === "0" ? -1n : BigInt(row.max_offset);
  }

  /** Inserts the rows of one partition's flush that are past its watermark; returns how many were inserted. */
  async append(topic: string, partition: number, outcomes: readonly PositionedOutcome[]): Promise<number> {
    if (outcomes.length === 0) return 0;
    const mark = await this.watermark(topic, partition);
    const fresh = outcomes.filter((item) => BigInt(item.position.offset) > mark);
    if (fresh.length === 0) return 0;
    for (const run of monthRuns(fresh)) {
      const first = run[0]!.position.offset;
      const last = run[run.length - 1]!.position.offset;
      await this.client.insert({
        table: this.table,
        values: run.map(usageEventRow),
        format: "JSONEachRow",
        clickhouse_settings: { insert_deduplication_token: `${topic}:${partition}:${first}:${last}` },
      });
      this.watermarks.set(topicPartitionKeyOf(topic, partition), BigInt(last));
    }
    return fresh.length;
  }

  /** Records what one flush covered (see partition-progress.ts). */
  appendProgress(row: FlushProgress): Promise<void> {
    return appendProgress(this.client, this.progressTable, row);
  }
}
