import { setTimeout as sleep } from "node:timers/promises";
import type {
  FlushProgress,
  PositionedAdjustment,
  PositionedOutcome,
  UsageLog,
} from "../../pipeline/processor/ports.ts";
import { isDeterministicStoreError } from "../../pipeline/processor/store-errors.ts";
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
    cached_prompt_tokens: outcome.cached_prompt_tokens ?? 0,
    reasoning_tokens: outcome.reasoning_tokens ?? 0,
    audio_tokens: outcome.audio_tokens ?? 0,
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
    agent_cached_prompt_tokens: agents.map(([, agent]) => agent.cached_prompt_tokens ?? 0),
    agent_reasoning_tokens: agents.map(([, agent]) => agent.reasoning_tokens ?? 0),
    agent_audio_tokens: agents.map(([, agent]) => agent.audio_tokens ?? 0),
    agent_response_time_ms: agents.map(([, agent]) => agent.response_time_ms ?? null),
    agent_message_count: agents.map(([, agent]) => agent.message_count ?? 0),
  };
}

/** One row per void or refund, its amounts negative as the core emits them (core/corrections.ts). */
export function adjustmentRow({ position, adjustment }: PositionedAdjustment): Record<string, unknown> {
  return {
    topic: position.topic,
    partition: position.partition,
    offset: position.offset,
    record_id: adjustment.record_id,
    adjustment: adjustment.adjustment,
    target_record_id: adjustment.target_record_id,
    target_occurred_at: adjustment.target_occurred_at,
    level: adjustment.level,
    enterprise_id: adjustment.enterprise_id,
    mozaiks_user_id: adjustment.mozaiks_user_id,
    platform_user_id: adjustment.platform_user_id ?? "",
    account_key: adjustment.account_key,
    chat_id: adjustment.chat_id,
    occurred_at: adjustment.occurred_at,
    billing_target: adjustment.billing_target,
    trial_tokens: adjustment.trial_tokens,
    paid_tokens: adjustment.paid_tokens,
    grant_tokens: adjustment.grant_tokens ?? 0,
    cost_micros: adjustment.cost_micros.toString(),
    billed_micros: adjustment.billed_micros.toString(),
    creator_share_micros: adjustment.creator_share_micros.toString(),
    platform_fee_micros: adjustment.platform_fee_micros.toString(),
    creator_share_bp: adjustment.creator_share_bp,
  };
}

/** The per-partition map of one table, made on first use. */
function perPartition<V>(
  byTable: Map<string, Map<TopicPartitionKey, V>>,
  table: string,
): Map<TopicPartitionKey, V> {
  let partitions = byTable.get(table);
  if (partitions === undefined) {
    partitions = new Map();
    byTable.set(table, partitions);
  }
  return partitions;
}

/** One insert as first sent: a retry must send these rows under this token (see insertRun). */
interface InsertRun {
  token: string;
  rows: Record<string, unknown>[];
  last: bigint;
}

/** A table whose rows are some of a partition's offsets, each at most once. */
interface OffsetTable<T> {
  name: string;
  offsetOf: (row: T) => string;
  occurredAt: (row: T) => string;
  toRow: (row: T) => Record<string, unknown>;
}

/**
 * Appends usage rows, and voids and refunds, exactly once per log position. Inserts for one partition
 * come from its single owner, in offset order, each insert atomic; so the highest offset a table holds
 * for a partition is a precise watermark, read once when the partition is (re)assigned. Each insert
 * carries a deduplication token made of its offset range, and a failed one is sent again exactly as it
 * was before anything past it (insertRun): the server drops what it already holds, in the raw table and
 * in each rollup view on its own, and stores what a crash cut off.
 */
export class UsageEventsSink implements UsageLog {
  /** Per table, then per source partition. */
  private readonly watermarks = new Map<string, Map<TopicPartitionKey, bigint>>();
  /** Per table, then per source partition: the run whose insert failed, kept through `forget`. */
  private readonly inDoubt = new Map<string, Map<TopicPartitionKey, InsertRun>>();
  private readonly usage: OffsetTable<PositionedOutcome>;
  private readonly adjustments: OffsetTable<PositionedAdjustment>;
  private readonly progressTable: string;

  constructor(
    private readonly client: ClickHouseClient,
    database: string,
  ) {
    this.usage = {
      name: `${quoteIdent(database)}.usage_events`,
      offsetOf: (row) => row.position.offset,
      occurredAt: (row) => row.outcome.occurred_at,
      toRow: usageEventRow,
    };
    this.adjustments = {
      name: `${quoteIdent(database)}.adjustments`,
      offsetOf: (row) => row.position.offset,
      occurredAt: (row) => row.adjustment.occurred_at,
      toRow: adjustmentRow,
    };
    this.progressTable = `${quoteIdent(database)}.partition_progress`;
  }

  /**
   * Forget what is known of a partition (on revocation, or a stage dropped), so the next owner reads the
   * watermark afresh. A run in doubt stays: whoever of this process writes the partition next sends it
   * first, unless the watermark shows another owner wrote past it.
   */
  forget(topic: string, partition: number): void {
    for (const marks of this.watermarks.values()) marks.delete(topicPartitionKeyOf(topic, partition));
  }

  forgetAll(): void {
    this.watermarks.clear();
  }

  private doubtsOf(table: string): Map<TopicPartitionKey, InsertRun> {
    return perPartition(this.inDoubt, table);
  }

  private marksOf(table: string): Map<TopicPartitionKey, bigint> {
    return perPartition(this.watermarks, table);
  }

  private async watermark(table: string, topic: string, partition: number): Promise<bigint> {
    const key = topicPartitionKeyOf(topic, partition);
    const known = this.marksOf(table).get(key);
    if (known !== undefined) return known;
    // Read twice, a moment apart, and keep the higher: the local engine (chdb 26.7) was seen to show a
    // table with none of its parts for an instant while a merge swapped them in, and a watermark read
    // low would insert rows again. A watermark only grows, so the higher read is the true one.
    const first = await this.readWatermark(table, topic, partition);
    await sleep(WATERMARK_REREAD_MS);
    const second = await this.readWatermark(table, topic, partition);
    let value = first;
    if (second > value) value = second;
    this.marksOf(table).set(key, value);
    return value;
  }

  /** The highest offset of usage stored for a source partition (-1: none), read afresh and not cached. */
  storedWatermark(topic: string, partition: number): Promise<bigint> {
    return this.readWatermark(this.usage.name, topic, partition);
  }

  private async readWatermark(table: string, topic: string, partition: number): Promise<bigint> {
    const result = await this.client.query({
      query: `SELECT toString(max(offset)) AS max_offset, count() AS n FROM ${table} WHERE topic = {topic:String} AND partition = {partition:UInt32}`,
      query_params: { topic, partition },
      format: "JSONEachRow",
    });
    const [row] = await result.json<{ max_offset: string; n: string }>();
    return row === undefined || row.n === "0" ? -1n : BigInt(row.max_offset);
  }

  /**
   * Inserts the usage rows of one partition's flush that are past its watermark, after the partition's
   * run in doubt if there is one; returns how many rows it sent.
   */
  append(topic: string, partition: number, outcomes: readonly PositionedOutcome[]): Promise<number> {
    return this.appendTo(this.usage, topic, partition, outcomes);
  }

  /** The same for the flush's voids and refunds. */
  appendAdjustments(
    topic: string,
    partition: number,
    adjustments: readonly PositionedAdjustment[],
  ): Promise<number> {
    return this.appendTo(this.adjustments, topic, partition, adjustments);
  }

  private async appendTo<T>(
    table: OffsetTable<T>,
    topic: string,
    partition: number,
    rows: readonly T[],
  ): Promise<number> {
    const key = topicPartitionKeyOf(topic, partition);
    const doubt = this.doubtsOf(table.name).get(key);
    if (rows.length === 0 && doubt === undefined) return 0;
    let mark = await this.watermark(table.name, topic, partition);
    let resent = 0;
    if (doubt !== undefined) {
      // Past the run's last offset, another owner has written on: the run's fate is theirs to have
      // settled, and sending it again could count it twice. Otherwise it goes again, exactly as it went.
      if (mark > doubt.last) this.doubtsOf(table.name).delete(key);
      else {
        await this.insertRun(table.name, key, doubt);
        mark = doubt.last;
        resent = doubt.rows.length;
      }
    }
    const fresh = rows.filter((row) => BigInt(table.offsetOf(row)) > mark);
    for (const run of runsByMonth(fresh, table.occurredAt)) {
      const first = table.offsetOf(run[0]!);
      const last = table.offsetOf(run[run.length - 1]!);
      await this.insertRun(table.name, key, {
        token: `${topic}:${partition}:${first}:${last}`,
        rows: run.map(table.toRow),
        last: BigInt(last),
      });
    }
    return resent + fresh.length;
  }

  /**
   * One insert. A server killed mid-insert may have stored the run in the raw table and in some rollup
   * views and not in others (ClickHouse commits the source part and each view's part one after another;
   * ClickHouse issue 104661). Only the same rows under the same token heal that: the raw table and each
   * view that has the run drop it by the token (deduplicate_blocks_in_dependent_materialized_views), a
   * view that missed it takes it. So a failed run stays in doubt, and is the first thing sent for its
   * partition, before any row past it, whatever the next flush is cut like: a re-planned flush cut
   * differently (a stage dropped and fetched again) carries another token, which every view that has
   * the run would take again, and a watermark re-read from the raw rows would skip the run and leave the
   * views that missed it without it for good. A refusal (store-errors.ts) stored nothing and is not
   * kept: the processor splits the batch to find the record behind it.
   */
  private async insertRun(table: string, key: TopicPartitionKey, run: InsertRun): Promise<void> {
    try {
      await this.client.insert({
        table,
        values: run.rows,
        format: "JSONEachRow",
        clickhouse_settings: {
          insert_deduplication_token: run.token,
          deduplicate_blocks_in_dependent_materialized_views: 1,
        },
      });
    } catch (error) {
      if (isDeterministicStoreError(error)) this.doubtsOf(table).delete(key);
      else this.doubtsOf(table).set(key, run);
      throw error;
    }
    this.doubtsOf(table).delete(key);
    this.marksOf(table).set(key, run.last);
  }

  /** Records what one flush covered (see partition-progress.ts). */
  appendProgress(row: FlushProgress): Promise<void> {
    return appendProgress(this.client, this.progressTable, row);
  }
}
