import type { FlushProgress } from "../../pipeline/processor/ports.ts";
import type { ClickHouseClient } from "./client.ts";

/**
 * One row per flush: which offsets of which partition it covered and what became of them. Dropped and
 * skipped records are data an analyst can query, not log lines: `docs/analytics.md` has the
 * reconciliation that flags offsets skipped as replays that no earlier flush covered (the loss the
 * position watermark fixed) and offsets no flush ever covered.
 */
export function partitionProgressStatements(db: string): string[] {
  return [
    `CREATE TABLE IF NOT EXISTS ${db}.partition_progress (
      source String,
      partition UInt32,
      first_offset Int64,
      last_offset Int64,
      consumed UInt32,
      applied UInt32,
      replayed_skipped UInt32,
      dead_lettered UInt32,
      duplicates UInt32,
      flushed_at DateTime64(3, 'UTC')
    )
    ENGINE = MergeTree
    PARTITION BY toYYYYMM(flushed_at)
    ORDER BY (source, partition, flushed_at, first_offset)
    SETTINGS non_replicated_deduplication_window = 1000`,
  ];
}

/** Appends one flush's row; a retried insert of the same flush carries the same token and is dropped. */
export async function appendProgress(
  client: ClickHouseClient,
  table: string,
  row: FlushProgress,
): Promise<void> {
  await client.insert({
    table,
    values: [
      {
        source: row.source,
        partition: row.partition,
        first_offset: row.firstOffset,
        last_offset: row.lastOffset,
        consumed: row.consumed,
        applied: row.applied,
        replayed_skipped: row.replayedSkipped,
        dead_lettered: row.deadLettered,
        duplicates: row.duplicates,
        flushed_at: row.flushedAt,
      },
    ],
    format: "JSONEachRow",
    clickhouse_settings: {
      insert_deduplication_token: `progress:${row.source}:${row.partition}:${row.firstOffset}:${row.lastOffset}:${row.flushedAt}`,
    },
  });
}
