import { Worker } from "node:worker_threads";
import { type MessagePacket, packetTransfer, packMessages } from "./packet.ts";
import type { Expected, TopicMessage } from "./recompute.ts";
import type { FromWorker, ToWorker } from "./recompute-worker.ts";
import { mergeUnits, type RecomputeSetup, type UnitResult, unitOf, unitsOf } from "./units.ts";
import { recomputeWorkerUrl } from "./worker-code.ts";

/** Bytes of records sent to a worker and not yet applied, past which the reader waits for it. */
const BACKLOG_BYTES = 48 * 1024 * 1024;

/**
 * Units shared out over `workers` threads: the largest first, each to the least loaded thread (by
 * records in the range; ties to the lower thread). Any sharing gives the same figures; this one keeps
 * the threads about equally busy.
 */
export function shareUnits(units: readonly { unit: number; records: number }[], workers: number): number[][] {
  const shares: number[][] = Array.from({ length: Math.max(1, workers) }, () => []);
  const load = shares.map(() => 0);
  const order = [...units].sort((a, b) => b.records - a.records || a.unit - b.unit);
  for (const { unit, records } of order) {
    let least = 0;
    for (let i = 1; i < load.length; i++) if (load[i]! < load[least]!) least = i;
    shares[least]!.push(unit);
    load[least]! += records;
  }
  return shares.filter((share) => share.length > 0).map((share) => share.sort((a, b) => a - b));
}

interface Thread {
  worker: Worker;
  backlog: number;
  /** Called when the backlog shrinks (or the pool fails): the reader waiting on this thread goes on. */
  wake: (() => void)[];
  result?: UnitResult[];
}

/**
 * The audit's recompute in worker threads: each thread runs the audit's Recomputer (UnitRecompute) on
 * the partitions it was given; `finish` merges their figures in partition order (mergeUnits), so the
 * result is the same for any number of threads, and the same as in the main thread.
 */
export class RecomputePool {
  private readonly threads: Thread[] = [];
  private readonly threadOfUnit = new Map<number, Thread>();
  private failure: Error | undefined;
  private readonly failed: Promise<never>;
  private readonly fail: (error: Error) => void;
  private applied = 0;
  private closed = false;

  /**
   * `records`: records in the range per partition (to share the partitions out evenly). `onApplied`
   * gets the running count of records the threads have decoded and taken in.
   */
  /** A pool whose threads run the bundled worker code (worker-code.ts). */
  static async create(
    setup: RecomputeSetup,
    workers: number,
    records: ReadonlyMap<number, number>,
    onApplied?: (records: number) => void,
  ): Promise<RecomputePool> {
    return new RecomputePool(await recomputeWorkerUrl(), setup, workers, records, onApplied);
  }

  private constructor(
    workerCode: URL,
    private readonly setup: RecomputeSetup,
    workers: number,
    records: ReadonlyMap<number, number>,
    private readonly onApplied: (records: number) => void = () => {},
  ) {
    let reject!: (error: Error) => void;
    this.failed = new Promise<never>((_resolve, rejectFailed) => {
      reject = rejectFailed;
    });
    this.fail = (error) => {
      if (this.failure !== undefined) return;
      this.failure = error;
      reject(error);
      for (const thread of this.threads) for (const wake of thread.wake.splice(0)) wake();
    };
    // Nobody may be awaiting it yet: the rejection is seen by add() and finish().
    this.failed.catch(() => {});
    const perUnit = new Map<number, number>();
    for (const [partition, count] of records) {
      const unit = unitOf(setup, partition);
      perUnit.set(unit, (perUnit.get(unit) ?? 0) + count);
    }
    const units = unitsOf(setup).map((unit) => ({ unit, records: perUnit.get(unit) ?? 0 }));
    for (const share of shareUnits(units, workers)) {
      const worker = new Worker(workerCode, { workerData: setup });
      const thread: Thread = { worker, backlog: 0, wake: [] };
      this.threads.push(thread);
      for (const unit of share) this.threadOfUnit.set(unit, thread);
      worker.on("message", (message: FromWorker) => this.onMessage(thread, message));
      worker.on("error", (error) => this.fail(error));
      worker.on("exit", (code) => {
        if (thread.result === undefined && !this.closed)
          this.fail(new Error(`audit: a recompute worker stopped (exit code ${code}) before its result`));
      });
    }
  }

  /** Threads in use: at most one per unit. */
  get size(): number {
    return this.threads.length;
  }

  private onMessage(thread: Thread, message: FromWorker): void {
    if (message.type === "applied") {
      thread.backlog -= message.bytes;
      this.applied += message.records;
      this.onApplied(this.applied);
      for (const wake of thread.wake.splice(0)) wake();
    } else if (message.type === "result") {
      thread.result = message.results;
      for (const wake of thread.wake.splice(0)) wake();
    }
  }

  /**
   * Hands one partition's messages (in offset order, after those handed before) to its thread. Resolves
   * once that thread's backlog is below BACKLOG_BYTES, so a reader that awaits it holds a bounded
   * number of records in memory.
   */
  add(partition: number, messages: readonly TopicMessage[]): Promise<void> {
    return this.send(partition, messages, undefined);
  }

  /**
   * Hands messages of several partitions, in the order they are to be applied (`partitions[i]` is the
   * partition of `messages[i]`), to the one thread whose unit holds all of them (a topic whose partition
   * count changed has one unit: units.ts). The order reaches the worker as it is: packets cross in the
   * order they are posted, and the post happens before this returns its promise.
   */
  addInOrder(partitions: readonly number[], messages: readonly TopicMessage[]): Promise<void> {
    if (partitions.length !== messages.length)
      return Promise.reject(new Error("audit: one partition per message"));
    if (messages.length === 0) return this.send(0, messages, undefined);
    const first = partitions[0]!;
    const unit = unitOf(this.setup, first);
    for (const partition of new Set(partitions))
      if (unitOf(this.setup, partition) !== unit)
        return Promise.reject(new Error(`audit: partitions ${first} and ${partition} are not in one unit`));
    return this.send(first, messages, partitions);
  }

  private async send(
    partition: number,
    messages: readonly TopicMessage[],
    partitions: readonly number[] | undefined,
  ): Promise<void> {
    if (this.failure !== undefined) throw this.failure;
    if (messages.length === 0) return;
    const thread = this.threadOfUnit.get(unitOf(this.setup, partition));
    if (thread === undefined) throw new Error(`audit: partition ${partition} is not in the range`);
    const packet: MessagePacket = packMessages(partition, messages, partitions);
    thread.backlog += packet.bytes;
    thread.worker.postMessage({ type: "packet", packet } satisfies ToWorker, packetTransfer(packet));
    while (thread.backlog > BACKLOG_BYTES && this.failure === undefined) {
      await new Promise<void>((resolve) => thread.wake.push(resolve));
    }
    if (this.failure !== undefined) throw this.failure;
  }

  /** Every thread's figures, merged in unit order; the threads then exit. */
  async finish(): Promise<Expected> {
    for (const thread of this.threads) thread.worker.postMessage({ type: "finish" } satisfies ToWorker);
    const results: UnitResult[] = [];
    for (const thread of this.threads) {
      while (thread.result === undefined) {
        await Promise.race([this.failed, new Promise<void>((resolve) => thread.wake.push(resolve))]);
      }
      results.push(...thread.result);
    }
    return mergeUnits(results);
  }

  /** Stops every thread (idempotent); after finish they have stopped on their own. */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.threads.map((thread) => thread.worker.terminate()));
  }
}
