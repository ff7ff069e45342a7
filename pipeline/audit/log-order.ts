import type { TopicMessage } from "./recompute.ts";

/** One partition's messages handed over and not yet released, in offset order. */
interface Lane {
  partition: number;
  messages: TopicMessage[];
  /** The log time each queued message is ordered by (see LogOrderMerge). */
  times: number[];
  /** Index of the head in `messages` (released ones before it are dropped now and then). */
  head: number;
  /** Key and value bytes queued. */
  bytes: number;
  /** Read to its end: nothing more will come, so an empty queue no longer holds the merge back. */
  ended: boolean;
  /** The log time of the last message queued, for a message without one. */
  lastTime: number;
}

/** Released messages are dropped from a queue's front once they are this many and half of it. */
const COMPACT_AT = 4096;

function messageBytes(message: TopicMessage): number {
  return (message.key?.length ?? 0) + (message.value?.length ?? 0);
}

/**
 * The records of several partitions in one order that does not depend on how they are delivered: a
 * k-way merge of the partitions, each kept in offset order, that always releases the head with the
 * earliest log timestamp (ties: the lower partition). A head is released only once every partition that
 * may still deliver has a head queued (or has been read to its end), so the order is a function of the
 * partitions' contents alone: the same for any batch cuts, any interleaving of partitions, any number
 * of worker threads. A message without a log timestamp takes the one before it on its partition (the
 * first ones of a partition: before everything).
 *
 * Log timestamps are what the processor's order followed live (each partition consumed as it was
 * produced), so this is the closest to the order the processor applied an account's records in when
 * they sit on two partitions (a partition count that changed). Memory: a partition ahead of the others
 * in log time waits here until they catch up; the reader holds it back (topic-reader.ts' pause) once its
 * queue passes a bound (feed.ts).
 */
export class LogOrderMerge {
  private readonly lanes = new Map<number, Lane>();
  /** Partitions not ended whose queue is empty: while any, nothing is released. */
  private waiting: number;

  constructor(
    partitions: Iterable<number>,
    private readonly emit: (partition: number, message: TopicMessage) => void,
  ) {
    for (const partition of [...new Set(partitions)].sort((a, b) => a - b)) {
      this.lanes.set(partition, {
        partition,
        messages: [],
        times: [],
        head: 0,
        bytes: 0,
        ended: false,
        lastTime: Number.NEGATIVE_INFINITY,
      });
    }
    this.waiting = this.lanes.size;
  }

  /** A partition's next messages, in offset order after those added before; then releases what it can. */
  add(partition: number, messages: readonly TopicMessage[]): void {
    const lane = this.laneOf(partition);
    if (lane.ended) throw new Error(`audit: partition ${partition} was read to its end already`);
    if (messages.length === 0) return;
    const wasEmpty = lane.head === lane.messages.length;
    for (const message of messages) {
      const stamp = message.timestamp === undefined ? Number.NaN : Number(message.timestamp);
      const time = Number.isFinite(stamp) ? stamp : lane.lastTime;
      lane.lastTime = time;
      lane.messages.push(message);
      lane.times.push(time);
      lane.bytes += messageBytes(message);
    }
    if (wasEmpty) this.waiting--;
    this.release();
  }

  /** The partition was read to its end (nothing more will be added): releases what it can. */
  end(partition: number): void {
    const lane = this.laneOf(partition);
    if (lane.ended) return;
    lane.ended = true;
    if (lane.head === lane.messages.length) this.waiting--;
    this.release();
  }

  /** Every partition ends: releases everything queued. */
  finish(): void {
    for (const partition of this.lanes.keys()) this.end(partition);
  }

  /** Key and value bytes a partition has queued. */
  queuedBytes(partition: number): number {
    return this.laneOf(partition).bytes;
  }

  /** Messages queued in all partitions. */
  get queued(): number {
    let queued = 0;
    for (const lane of this.lanes.values()) queued += lane.messages.length - lane.head;
    return queued;
  }

  /** The partitions the merge waits for: not read to their end, and nothing queued. */
  waitingFor(): number[] {
    return [...this.lanes.values()]
      .filter((lane) => !lane.ended && lane.head === lane.messages.length)
      .map((lane) => lane.partition);
  }

  private laneOf(partition: number): Lane {
    const lane = this.lanes.get(partition);
    if (lane === undefined) throw new Error(`audit: partition ${partition} is not in the range`);
    return lane;
  }

  private release(): void {
    const lanes = [...this.lanes.values()];
    while (this.waiting === 0) {
      // The earliest head; lanes are in partition order, so a tie keeps the lower partition.
      let next: Lane | undefined;
      for (const lane of lanes) {
        if (lane.head === lane.messages.length) continue;
        if (next === undefined || lane.times[lane.head]! < next.times[next.head]!) next = lane;
      }
      if (next === undefined) return;
      const message = next.messages[next.head]!;
      next.head++;
      next.bytes -= messageBytes(message);
      if (next.head === next.messages.length) {
        next.messages = [];
        next.times = [];
        next.head = 0;
        if (!next.ended) this.waiting++;
      } else if (next.head >= COMPACT_AT && next.head * 2 >= next.messages.length) {
        next.messages = next.messages.slice(next.head);
        next.times = next.times.slice(next.head);
        next.head = 0;
      }
      this.emit(next.partition, message);
    }
  }
}
