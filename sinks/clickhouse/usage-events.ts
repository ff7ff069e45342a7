import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type {
  FlushProgress,
  PositionedAdjustment,
  PositionedOutcome,
  UsageLog,
} from "../../pipeline/processor/ports.ts";
import { AgentmeterError } from "../../schemas/errors.ts";
import { type TopicPartitionKey, topicPartitionKeyOf } from "../../schemas/keys.ts";
import type { ClickHouseClient } from "./client.ts";
import { quoteIdent } from "./client.ts";
import { appendProgress } from "./partition-progress.ts";
import { ROLLUPS, type Rollup } from "./rollups.ts";

const WATERMARK_REREAD_MS = 200;

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

/** A UTC month as ClickHouse's toYYYYMM gives it, the partition every table of rows is cut by. */
export function monthOf(time: string): number {
  const iso = new Date(time).toISOString();
  return Number(iso.slice(0, 4)) * 100 + Number(iso.slice(5, 7));
}

/** The rows grouped by month, in the order each month first appears, offset order kept within. */
function byMonth<T>(rows: readonly T[], timeOf: (row: T) => string): Map<number, T[]> {
  const months = new Map<number, T[]>();
  for (const row of rows) {
    const month = monthOf(timeOf(row));
    const list = months.get(month);
    if (list === undefined) months.set(month, [row]);
    else list.push(row);
  }
  return months;
}

/** How far a table holds one source partition: per month, the highest offset it has (absent: none). */
type Marks = Map<number, bigint>;

/** A table holding rows of source partitions, and the query that reads its marks for one of them. */
interface MarkedTable {
  name: string;
  marks: string;
}

/** Rows of one kind: the tables they go to, the first of them the raw one, and how one becomes a row. */
interface RowKind<T> {
  /** The raw table first, then the tables derived from it. */
  tables: MarkedTable[];
  /** Where an insert goes that every table needs whole: a fan-out to all of them. */
  fanOut: string;
  /** The tables derived from the raw one, in the order of `tables` after it (see fillFromRaw). */
  derived: Rollup[];
  offsetOf: (row: T) => string;
  occurredAt: (row: T) => string;
  toRow: (row: T) => Record<string, unknown>;
}

const POLL_MS = 200;

/** The raw rows of one month of one source partition, up to an offset (query parameters). */
const RAW_SLICE =
  "topic = {topic:String} AND partition = {partition:UInt32} AND toYYYYMM(occurred_at) = {month:UInt32} AND offset <= {to:UInt64}";

/** Every write of a partition carries a query id starting so, whoever owns the partition. */
function queryPrefix(topic: string, partition: number): string {
  return `agentmeter:${topic}:${partition}:`;
}
const SETTLE_BOUND_MS = 60_000;

function rawMarks(table: string): MarkedTable {
  return {
    name: table,
    marks: `SELECT toYYYYMM(occurred_at) AS month, toString(max(offset)) AS mark FROM ${table} WHERE topic = {topic:String} AND partition = {partition:UInt32} GROUP BY month`,
  };
}

/**
 * Appends usage rows, and voids and refunds, exactly once per log position, in every table, whatever a
 * crash of the server or of the processor cut.
 *
 * ClickHouse makes no insert atomic across tables (the source part and each view's part are committed one
 * after another; ClickHouse issue 104661), and its insert deduplication is not crash-safe either: measured
 * on 26.7, a server SIGKILLed mid-insert kept the block id in a table's deduplication log without the part,
 * so the retry under the same token was dropped and the rows lost, and a soak found the opposite in a view
 * (its part kept, a retry counted again). So no figure rests on deduplication. Each table says itself how
 * far it holds a source partition, month by month: usage_events and adjustments by their offsets, each
 * rollup by its src_offset, stored in the same part as the figures. One partition has one owner writing
 * in offset order and one month per insert (one part per table), so a mark is exact. A flush sends each
 * table only the rows past its own mark: when the tables agree, one insert into `usage_ingest` feeds them
 * all; when a crash left them apart, the raw table takes its missing rows alone and each behind rollup is
 * filled from the raw rows (see fillFromRaw). After a failed insert the marks are read again, once no
 * insert of this partition is still running on the server (settle), so a slow insert that did land is
 * seen, never sent twice.
 */
export class UsageEventsSink implements UsageLog {
  /** Per table, then per source partition. */
  private readonly marks = new Map<string, Map<TopicPartitionKey, Marks>>();
  private readonly usage: RowKind<PositionedOutcome>;
  private readonly adjustments: RowKind<PositionedAdjustment>;
  private readonly db: string;
  private readonly rawUsage: string;
  private readonly progressTable: string;

  constructor(
    private readonly client: ClickHouseClient,
    database: string,
  ) {
    const db = quoteIdent(database);
    this.db = db;
    this.rawUsage = `${db}.usage_events`;
    this.usage = {
      tables: [
        rawMarks(this.rawUsage),
        ...ROLLUPS.map(({ table, bucket }) => ({
          name: `${db}.${table}`,
          marks: `SELECT toYYYYMM(${bucket}) AS month, toString(max(src_offset)) AS mark FROM ${db}.${table} WHERE src_topic = {topic:String} AND src_partition = {partition:UInt32} GROUP BY month`,
        })),
      ],
      fanOut: `${db}.usage_ingest`,
      derived: [...ROLLUPS],
      offsetOf: (row) => row.position.offset,
      occurredAt: (row) => row.outcome.occurred_at,
      toRow: usageEventRow,
    };
    const adjustments = `${db}.adjustments`;
    this.adjustments = {
      tables: [rawMarks(adjustments)],
      fanOut: adjustments,
      derived: [],
      offsetOf: (row) => row.position.offset,
      occurredAt: (row) => row.adjustment.occurred_at,
      toRow: adjustmentRow,
    };
    this.progressTable = `${db}.partition_progress`;
  }

  /** Forget what is known of a partition (on revocation, or a stage dropped): the next write reads afresh. */
  forget(topic: string, partition: number): void {
    for (const marks of this.marks.values()) marks.delete(topicPartitionKeyOf(topic, partition));
  }

  forgetAll(): void {
    this.marks.clear();
  }

  /** The highest offset of usage stored for a source partition (-1: none), read afresh and not cached. */
  async storedWatermark(topic: string, partition: number): Promise<bigint> {
    let highest = -1n;
    for (const mark of (await this.readMarks(this.usage.tables[0]!, topic, partition)).values())
      if (mark > highest) highest = mark;
    return highest;
  }

  /**
   * The highest offset of any usage or adjustment row stored for a source partition (-1: none), read
   * afresh. A flush writes these rows before any ledger or account (flush.ts), so a record past it has
   * no effect in any store that bills.
   */
  async storedThrough(topic: string, partition: number): Promise<bigint> {
    let highest = await this.storedWatermark(topic, partition);
    for (const mark of (await this.readMarks(this.adjustments.tables[0]!, topic, partition)).values())
      if (mark > highest) highest = mark;
    return highest;
  }

  /** Inserts the usage rows of one partition's flush that some table lacks; returns how many raw rows it sent. */
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
    kind: RowKind<T>,
    topic: string,
    partition: number,
    rows: readonly T[],
  ): Promise<number> {
    if (rows.length === 0) return 0;
    const marks = await this.marksOf(kind, topic, partition);
    const offset = (row: T) => BigInt(kind.offsetOf(row));
    let sent = 0;
    for (const [month, monthRows] of byMonth(rows, kind.occurredAt)) {
      const last = offset(monthRows[monthRows.length - 1]!);
      const held = marks.map((m) => m.get(month) ?? -1n);
      if (held.every((mark) => mark >= last)) continue;
      const raw = monthRows.filter((row) => offset(row) > held[0]!);
      if (held.every((mark) => mark === held[0])) {
        await this.insert(topic, partition, kind.fanOut, raw.map(kind.toRow));
      } else {
        if (raw.length > 0) await this.insert(topic, partition, kind.tables[0]!.name, raw.map(kind.toRow));
        for (const [i, rollup] of kind.derived.entries()) {
          const from = held[i + 1]!;
          if (from < last) await this.fillFromRaw(topic, partition, rollup, { month, from, to: last });
        }
      }
      sent += raw.length;
      for (const [i, m] of marks.entries()) if (held[i]! < last) m.set(month, last);
    }
    return sent;
  }

  /**
   * A rollup behind the raw table takes the raw rows it lacks, one month of one source partition, read
   * `FINAL` (a row written twice by a stale owner counts once), in one insert: one part, so its mark moves
   * with its figures. Then the month of the partition is compared whole with the raw rows: the local
   * engine was seen to show a table without its parts while a merge swapped them (docs/analytics.md), and a
   * fill that read part of the rows would hold the top offset and mark itself complete. On a difference
   * the month of the partition is rebuilt in the rollup (deleted, filled again from every raw row); a
   * second difference fails the flush, to be retried.
   */
  private async fillFromRaw(
    topic: string,
    partition: number,
    rollup: Rollup,
    range: { month: number; from: bigint; to: bigint },
  ): Promise<void> {
    const table = `${this.db}.${rollup.table}`;
    const slice = { topic, partition, month: range.month, to: range.to.toString() };
    const fill = (from: bigint) =>
      this.guarded(topic, partition, (query_id) =>
        this.client.command({
          query: `INSERT INTO ${table} ${rollup.select(`(SELECT * FROM ${this.rawUsage} FINAL WHERE ${RAW_SLICE} AND toInt64(offset) > {from:Int64})`)}`,
          query_params: { ...slice, from: from.toString() },
          query_id,
          clickhouse_settings: { insert_deduplicate: 0 },
        }),
      );
    await fill(range.from);
    if (await this.sliceAgrees(rollup, slice)) return;
    await this.guarded(topic, partition, (query_id) =>
      this.client.command({
        query: `ALTER TABLE ${table} DELETE WHERE src_topic = {topic:String} AND src_partition = {partition:UInt32} AND toYYYYMM(${rollup.bucket}) = {month:UInt32}`,
        query_params: slice,
        query_id,
        clickhouse_settings: { mutations_sync: "2" },
      }),
    );
    await fill(-1n);
    if (await this.sliceAgrees(rollup, slice)) return;
    this.forget(topic, partition);
    throw new AgentmeterError(
      "SERVICE_UNAVAILABLE",
      `ClickHouse: ${rollup.table} disagrees with usage_events for ${topic}/${partition} in ${range.month} after a rebuild`,
    );
  }

  /** Whether a rollup's month of a source partition counts what the raw rows up to `to` count. */
  private async sliceAgrees(
    rollup: Rollup,
    slice: { topic: string; partition: number; month: number; to: string },
  ): Promise<boolean> {
    const read = async (query: string) => {
      const result = await this.client.query({ query, query_params: slice, format: "JSONEachRow" });
      const [row] = await result.json<{ n: string }>();
      return row?.n ?? "0";
    };
    const [held, raw] = await Promise.all([
      read(
        `SELECT toString(${rollup.tally.rollup}) AS n FROM ${this.db}.${rollup.table} WHERE src_topic = {topic:String} AND src_partition = {partition:UInt32} AND toYYYYMM(${rollup.bucket}) = {month:UInt32}`,
      ),
      read(`SELECT toString(${rollup.tally.raw}) AS n FROM ${this.rawUsage} FINAL WHERE ${RAW_SLICE}`),
    ]);
    return held === raw;
  }

  /**
   * One insert, not deduplicated (the marks decide what is sent). A failed one may still be running, or
   * may have landed in some tables: the partition's marks are dropped, to be read again once it is over.
   *
   * Rows go as JSONCompactEachRow: each row its values only, the column names once in the statement. A
   * usage row is about 450 bytes instead of 1,100, and serialising it costs the processor less (and
   * ClickHouse less to parse). Every row of an insert comes from one row builder (an object literal), so
   * all share the first row's key order.
   */
  private insert(
    topic: string,
    partition: number,
    table: string,
    values: Record<string, unknown>[],
  ): Promise<unknown> {
    const first = values[0];
    if (first === undefined) return Promise.resolve();
    const columns = Object.keys(first) as [string, ...string[]];
    return this.guarded(topic, partition, (query_id) =>
      this.client.insert({
        table,
        values: values.map((row) => Object.values(row)),
        columns,
        format: "JSONCompactEachRow",
        query_id,
        clickhouse_settings: { insert_deduplicate: 0 },
      }),
    );
  }

  private async guarded(
    topic: string,
    partition: number,
    write: (queryId: string) => Promise<unknown>,
  ): Promise<void> {
    try {
      await write(`${queryPrefix(topic, partition)}${randomUUID()}`);
    } catch (error) {
      this.forget(topic, partition);
      throw error;
    }
  }

  /** The marks of every table of a kind for one partition, read once no insert of it is running. */
  private async marksOf<T>(kind: RowKind<T>, topic: string, partition: number): Promise<Marks[]> {
    const key = topicPartitionKeyOf(topic, partition);
    const cached = kind.tables.map((table) => this.marks.get(table.name)?.get(key));
    if (cached.every((m) => m !== undefined)) return cached as Marks[];
    await this.settle(topic, partition);
    // Read twice, a moment apart, and keep the higher: the local engine (chdb 26.7) was seen to show a
    // table with none of its parts for an instant while a merge swapped them in, and a mark read low
    // would send rows again. A mark only grows, so the higher read is the true one.
    const first = await Promise.all(kind.tables.map((table) => this.readMarks(table, topic, partition)));
    await sleep(WATERMARK_REREAD_MS);
    const second = await Promise.all(kind.tables.map((table) => this.readMarks(table, topic, partition)));
    return kind.tables.map((table, i) => {
      const merged = new Map(first[i]!);
      for (const [month, mark] of second[i]!) if (mark > (merged.get(month) ?? -1n)) merged.set(month, mark);
      let byKey = this.marks.get(table.name);
      if (byKey === undefined) {
        byKey = new Map();
        this.marks.set(table.name, byKey);
      }
      byKey.set(key, merged);
      return merged;
    });
  }

  private async readMarks(table: MarkedTable, topic: string, partition: number): Promise<Marks> {
    const result = await this.client.query({
      query: table.marks,
      query_params: { topic, partition },
      format: "JSONEachRow",
    });
    const rows = await result.json<{ month: number | string; mark: string }>();
    return new Map(rows.map((row) => [Number(row.month), BigInt(row.mark)]));
  }

  /**
   * Waits until no insert of this partition is running on the server (any owner's: the ids carry the
   * partition), so marks read next include whatever a slow or cut-off insert stored. A server restarted
   * since runs none. Bounded: past it the write fails and the processor retries it.
   */
  private async settle(topic: string, partition: number): Promise<void> {
    const deadline = Date.now() + SETTLE_BOUND_MS;
    for (;;) {
      const result = await this.client.query({
        query: "SELECT count() AS n FROM system.processes WHERE startsWith(query_id, {prefix:String})",
        query_params: { prefix: queryPrefix(topic, partition) },
        format: "JSONEachRow",
      });
      const [row] = await result.json<{ n: string | number }>();
      if (Number(row?.n ?? 0) === 0) return;
      if (Date.now() > deadline)
        throw new AgentmeterError(
          "SERVICE_UNAVAILABLE",
          `ClickHouse: an insert of ${topic}/${partition} still running after ${SETTLE_BOUND_MS / 1000} s`,
        );
      await sleep(POLL_MS);
    }
  }

  /** Records what one flush covered (see partition-progress.ts). */
  appendProgress(row: FlushProgress): Promise<void> {
    return appendProgress(this.client, this.progressTable, row);
  }
}
