import { LogOrderMerge } from "./log-order.ts";
import { RecomputePool } from "./pool.ts";
import type { Expected, TopicMessage } from "./recompute.ts";
import { AUDIT_FETCH, type ReadControl } from "./topic-reader.ts";
import { ALL_PARTITIONS, mergeUnits, type RecomputeSetup, UnitRecompute, unitsOf } from "./units.ts";

/**
 * Bytes (keys and values) the log-order merge may hold for all partitions together before the reader
 * pauses the partitions that are ahead; each partition may hold its share, and never less than one
 * fetch of it (AUDIT_FETCH.maxBytesPerPartition), plus the batch that took it past.
 */
export const MERGE_BYTES = 64 * 1024 * 1024;

export interface FeedOptions {
  /** See MERGE_BYTES. */
  mergeBytes?: number;
  /** What one partition may hold in the merge before it is paused (default: its share of mergeBytes). */
  laneBytes?: number;
  /** Running count of records the worker threads have taken in (not called in the main thread). */
  onApplied?: (records: number) => void;
}

/**
 * What the reader feeds the recompute with, batch by batch as kafkajs hands them over, in the main
 * thread (workers 0) or in worker threads (RecomputePool). The figures do not depend on the order in
 * which partitions are delivered:
 *  - one partition count: a unit per partition, each fed its partition in offset order (units.ts);
 *  - a partition count that changed: one unit for every partition, whose accounts may span two of them;
 *    its records go through a LogOrderMerge first (the partitions merged by log timestamp, then
 *    partition, each in offset order), so they are applied in one order whatever the delivery.
 *
 * The merge holds back a partition that is ahead in log time until the others catch up. So that memory
 * stays bounded, a partition holding more than its share of `mergeBytes` is paused at the reader
 * (ReadControl) and resumed once the merge has taken it below half of it. A partition the merge waits for
 * holds nothing, so it is never paused: the reading always goes on. Pausing, not waiting inside a batch,
 * because kafkajs fetches a broker's partitions again only once every batch of its last fetch is handled.
 */
export class RecomputeFeed {
  private readonly merge: LogOrderMerge | undefined;
  private readonly laneBytes: number;
  private readonly paused = new Set<number>();
  /** What the merge released and is not sent yet (worker threads only). */
  private outPartitions: number[] = [];
  private outMessages: TopicMessage[] = [];

  private constructor(
    setup: RecomputeSetup,
    private readonly units: UnitRecompute | undefined,
    private readonly pool: RecomputePool | undefined,
    options: FeedOptions,
  ) {
    const lanes = [...new Set(setup.partitions)];
    const merged = unitsOf(setup).length === 1 && unitsOf(setup)[0] === ALL_PARTITIONS && lanes.length > 1;
    this.merge = merged
      ? new LogOrderMerge(lanes, (partition, message) => {
          if (this.units !== undefined) this.units.add(partition, message);
          else {
            this.outPartitions.push(partition);
            this.outMessages.push(message);
          }
        })
      : undefined;
    this.laneBytes =
      options.laneBytes ??
      Math.max(
        AUDIT_FETCH.maxBytesPerPartition,
        Math.floor((options.mergeBytes ?? MERGE_BYTES) / Math.max(1, lanes.length)),
      );
  }

  /**
   * In the main thread when `workers` is 0 (or no partition holds records), else in up to `workers`
   * threads. `records`: records in the range per partition (to share the partitions out).
   */
  static async create(
    setup: RecomputeSetup,
    workers: number,
    records: ReadonlyMap<number, number>,
    options: FeedOptions = {},
  ): Promise<RecomputeFeed> {
    if (workers === 0 || setup.partitions.length === 0)
      return new RecomputeFeed(setup, new UnitRecompute(setup), undefined, options);
    const pool = await RecomputePool.create(setup, workers, records, options.onApplied);
    return new RecomputeFeed(setup, undefined, pool, options);
  }

  /** Threads recomputing: 0 in the main thread. */
  get threads(): number {
    return this.pool?.size ?? 0;
  }

  /** Whether records go through the log-order merge (a unit for all partitions). */
  get merged(): boolean {
    return this.merge !== undefined;
  }

  /** Bytes the merge holds for a partition (0 without a merge). */
  queuedBytes(partition: number): number {
    return this.merge?.queuedBytes(partition) ?? 0;
  }

  /**
   * A partition's next messages, in offset order after those fed before; `ended` on its last batch
   * (which may be empty). Resolves when the worker thread's backlog allows more (pool.ts).
   */
  batch(
    partition: number,
    messages: readonly TopicMessage[],
    ended: boolean,
    control?: ReadControl,
  ): Promise<void> {
    if (this.merge === undefined) {
      if (this.pool !== undefined) return this.pool.add(partition, messages);
      for (const message of messages) this.units!.add(partition, message);
      return Promise.resolve();
    }
    try {
      this.merge.add(partition, messages);
      if (ended) this.merge.end(partition);
    } catch (error) {
      return Promise.reject(error);
    }
    // Sent before anything is awaited: packets reach the thread in the order the merge released them.
    const sent = this.send();
    if (control !== undefined) this.throttle(partition, ended, control);
    return sent;
  }

  /** Every figure, once every partition was fed to its end. */
  async finish(): Promise<Expected> {
    if (this.merge !== undefined) {
      this.merge.finish();
      await this.send();
    }
    if (this.pool !== undefined) return this.pool.finish();
    return mergeUnits(this.units!.finish());
  }

  /** Stops the worker threads, if any (idempotent). */
  async close(): Promise<void> {
    await this.pool?.close();
  }

  private send(): Promise<void> {
    if (this.pool === undefined || this.outMessages.length === 0) return Promise.resolve();
    const partitions = this.outPartitions;
    const messages = this.outMessages;
    this.outPartitions = [];
    this.outMessages = [];
    return this.pool.addInOrder(partitions, messages);
  }

  private throttle(partition: number, ended: boolean, control: ReadControl): void {
    const merge = this.merge!;
    if (!ended && !this.paused.has(partition) && merge.queuedBytes(partition) > this.laneBytes) {
      this.paused.add(partition);
      control.pause(partition);
    }
    for (const held of this.paused) {
      if (merge.queuedBytes(held) > this.laneBytes / 2) continue;
      this.paused.delete(held);
      control.resume(held);
    }
  }
}
