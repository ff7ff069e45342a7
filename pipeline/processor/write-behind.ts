import { setTimeout as sleep } from "node:timers/promises";
import { AgentmeterError } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { FlushTimings } from "./flush.ts";
import { OrderedPublisher } from "./ordered-publisher.ts";
import type { FlushPlan } from "./plan.ts";
import { type Decisions, docKey, type PendingWrite, type ProjectionWrite, targetKey } from "./ports.ts";

/**
 * One partition's writes behind the decisions. A plan enters with its Kafka outputs (budget events and
 * states, hold decisions, dead letters), which the stage publishes in the plans' order beside the cycles
 * (ordered-publisher.ts), so the consumer fetches again without waiting for the brokers. A
 * cycle takes every plan waiting, waits until their outputs are published (nothing reaches a store
 * before its decisions are on the bus: a crash in between must fetch them again), coalesces them into
 * one write per document (the latest state wins; rows and immutable documents are kept once each),
 * writes it in the flush order (ClickHouse, then ledgers and projections, then accounts: flush.ts), and
 * then commits the last offset it holds. Cycles run one at a time, so a slower store means fewer, larger
 * cycles rather than a slower decision path.
 */
export interface WriteBehindDeps {
  /** Publishes the decisions of one or more plans, retrying what a retry can cure. */
  publish: (decisions: Decisions) => Promise<void>;
  /** Writes one cycle, retrying what a retry can cure; throws what it cannot (refusal, lost ownership). */
  write: (cycle: FlushPlan, checkpoint: () => void) => Promise<FlushTimings>;
  /** The cycle is in the stores: move the partition's memory on (PartitionWorker.durable) and count it. */
  durable: (cycle: FlushPlan, plans: readonly FlushPlan[]) => void;
  /** Commits the offset after the cycle's last record; a failure is logged, the next cycle commits further. */
  commit: (offset: string) => Promise<void>;
  /** The stage stopped on this error; the caller drops it and fetches again from `resumeFrom`. */
  failed: (error: unknown) => void;
  logger: Logger;
  /**
   * Least time from one cycle's start to the next one's (0: back to back). Records that arrive in
   * between join the next cycle: fewer, larger inserts and writes when the load is light (each
   * ClickHouse insert writes a part in every rollup table, whatever its rows). Decisions do not wait for
   * cycles; the stores and the committed offset lag by up to this more.
   */
  minIntervalMs?: number;
}

/**
 * Records one cycle takes at most (whole plans; a single larger plan goes alone). Past a few thousand
 * records coalescing saves little more, while a longer cycle holds back every commit behind it and is
 * more to redo after a crash.
 */
export const MAX_CYCLE_RECORDS = 10_000;

export interface PendingBounds {
  maxRecords: number;
  maxLagMs: number;
}

/** A plan waiting for its cycle: when it was queued, and when its outputs are published. */
interface Queued {
  plan: FlushPlan;
  queuedAt: number;
  published: Promise<void>;
}

export class WriteBehind {
  private readonly queue: Queued[] = [];
  private running: Promise<void> | undefined;
  private failure: unknown;
  private abandoned = false;
  /** The last offset of the cycle the stores refused, if one was. */
  private failedAt: string | undefined;
  private pendingRecords = 0;
  private readonly publisher: OrderedPublisher;
  /** When the oldest plan of the cycle in flight was queued. */
  private cycleQueuedAt: number | undefined;
  private waiters: { resolve: () => void; reject: (error: unknown) => void }[] = [];
  /** When the last cycle started (Date.now()), for minIntervalMs. */
  private lastCycleStart = 0;
  private readonly abandoning = new AbortController();
  /** The first offset not yet durable (from the oldest plan queued or being written), or undefined. */
  private pendingFrom: string | undefined;

  constructor(
    readonly partition: number,
    /** The name the stores know the input topic by (see topic-registry.ts). */
    readonly source: string,
    private readonly deps: WriteBehindDeps,
  ) {
    this.publisher = new OrderedPublisher(deps.publish);
  }

  get dropped(): boolean {
    return this.abandoned;
  }

  /** The last offset of the cycle that failed, if one did (the synchronous path goes past it). */
  get failedUpTo(): string | undefined {
    return this.failedAt;
  }

  /** Where to fetch from again if the stage is dropped: its first offset not yet durable. */
  get resumeFrom(): string | undefined {
    return this.pendingFrom;
  }

  get idle(): boolean {
    return this.queue.length === 0 && this.running === undefined;
  }

  /**
   * Queues a plan and publishes its outputs after those queued before. Resolves once they are published;
   * a publish that fails (after the retries `publish` makes) stops the stage like a refused cycle.
   */
  enqueue(plan: FlushPlan): Promise<void> {
    if (this.abandoned) throw new AgentmeterError("OWNERSHIP_LOST", "write-behind stage was dropped");
    const published = this.publisher.submit(plan);
    // Awaited by the cycle that takes the plan; until then a failure must not be an unhandled rejection.
    published.catch(() => undefined);
    this.pendingFrom ??= plan.firstOffset;
    this.queue.push({ plan, queuedAt: Date.now(), published });
    this.pendingRecords += plan.stats.consumed;
    this.kick();
    return published;
  }

  /** Whether the partition must stop fetching until a cycle drains it. */
  over(bounds: PendingBounds, now = Date.now()): boolean {
    if (this.pendingRecords >= bounds.maxRecords) return true;
    const oldest = this.oldestQueuedAt();
    return oldest !== undefined && now - oldest >= bounds.maxLagMs;
  }

  /** Records applied but not yet in the stores, and how long the oldest of them has waited. */
  get pending(): { records: number; oldestMs: number } {
    const oldest = this.oldestQueuedAt();
    return { records: this.pendingRecords, oldestMs: oldest === undefined ? 0 : Date.now() - oldest };
  }

  private oldestQueuedAt(): number | undefined {
    return this.cycleQueuedAt ?? this.queue[0]?.queuedAt;
  }

  /** Resolves when everything queued so far is durable and committed; rejects with the stage's failure. */
  drain(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.idle) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** Resolves after the cycle in flight (if any) ends; rejects with the stage's failure. */
  nextCycle(): Promise<void> {
    if (this.failure !== undefined) return Promise.reject(this.failure);
    const running = this.running;
    if (running === undefined) return Promise.resolve();
    return running.then(() => {
      if (this.failure !== undefined) throw this.failure;
    });
  }

  /**
   * Stops the stage: nothing more is written or committed from it (a partition revoked, or its memory
   * reset). Resolves once the cycle and the publishes in flight have settled, so a new owner's loads
   * never race them and its outputs reach the bus after this stage's.
   */
  async abandon(): Promise<void> {
    this.abandoned = true;
    this.abandoning.abort();
    this.queue.length = 0;
    const running = this.running;
    if (running !== undefined) await running.catch(() => undefined);
    await this.publisher.close();
    this.fail(this.failure ?? new AgentmeterError("OWNERSHIP_LOST", "write-behind stage was dropped"));
  }

  private kick(): void {
    if (this.running !== undefined || this.failure !== undefined || this.abandoned) return;
    if (this.queue.length === 0) return;
    this.running = this.loop().finally(() => {
      this.running = undefined;
      if (this.queue.length > 0 && this.failure === undefined && !this.abandoned) this.kick();
      else if (this.failure === undefined && this.queue.length === 0) this.settleWaiters();
    });
  }

  private async loop(): Promise<void> {
    while (this.queue.length > 0 && !this.abandoned) {
      const wait = this.lastCycleStart + (this.deps.minIntervalMs ?? 0) - Date.now();
      if (wait > 0) {
        // Abandoning ends the wait at once: a new owner must not wait for a cycle that will not run.
        await sleep(wait, undefined, { signal: this.abandoning.signal }).catch(() => undefined);
        if (this.abandoned) return;
      }
      this.lastCycleStart = Date.now();
      let take = 0;
      for (let records = 0; take < this.queue.length; take++) {
        const consumed = this.queue[take]!.plan.stats.consumed;
        if (take > 0 && records + consumed > MAX_CYCLE_RECORDS) break;
        records += consumed;
      }
      const taken = this.queue.splice(0, take);
      const plans = taken.map((queued) => queued.plan);
      this.cycleQueuedAt = taken[0]!.queuedAt;
      const cycle = mergePlans(plans);
      const checkpoint = () => {
        if (this.abandoned)
          throw new AgentmeterError("OWNERSHIP_LOST", "write-behind stage dropped during a cycle");
      };
      try {
        // Published in order, and nothing after a failure: the last plan's settles after the others'.
        await taken[taken.length - 1]!.published;
        checkpoint();
        await this.deps.write(cycle, checkpoint);
      } catch (error) {
        // The plans stay unwritten: the caller drops this stage and fetches again from resumeFrom.
        this.queue.unshift(...taken);
        this.cycleQueuedAt = undefined;
        this.failedAt = (BigInt(cycle.commitOffset) - 1n).toString();
        this.fail(error);
        if (!this.abandoned) this.deps.failed(error);
        return;
      }
      this.cycleQueuedAt = undefined;
      this.pendingRecords -= plans.reduce((sum, plan) => sum + plan.stats.consumed, 0);
      this.deps.durable(cycle, plans);
      if (this.abandoned) return;
      try {
        await this.deps.commit(cycle.commitOffset);
      } catch (error) {
        this.deps.logger.warn(
          { err: error, partition: this.partition, offset: cycle.commitOffset },
          "commit after a durable cycle failed; the next cycle commits further",
        );
      }
      this.pendingFrom = this.queue[0]?.plan.firstOffset;
      if (this.queue.length === 0) this.settleWaiters();
    }
  }

  private settleWaiters(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  private fail(error: unknown): void {
    this.failure ??= error;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(this.failure);
  }
}

/** One write per document: the latest plan's body and watermark, on the condition the stores hold now. */
function coalesceDocs<T>(lists: readonly PendingWrite<T>[][]): PendingWrite<T>[] {
  const latest = new Map<string, PendingWrite<T>>();
  for (const list of lists) {
    for (const write of list) {
      const key = docKey(write.ref);
      latest.delete(key);
      latest.set(key, write);
    }
  }
  return [...latest.values()].map((write) => ({
    ...write,
    loaded: write.owner === undefined ? write.loaded : write.owner.stored,
  }));
}

/**
 * Projections are absolute values: the last one per document wins. A later "only if it exists" update
 * after an earlier upsert of the same document must still create it, whole: the earlier write's fields
 * with the update's on top. A shared document's merge keeps its first facts (they never change).
 */
function coalesceProjections(lists: readonly ProjectionWrite[][]): ProjectionWrite[] {
  const latest = new Map<string, ProjectionWrite>();
  for (const list of lists) {
    for (const write of list) {
      const key = `${targetKey(write.target)}/${write.id}`;
      const earlier = latest.get(key);
      latest.delete(key);
      if (earlier === undefined) {
        latest.set(key, write);
      } else if (write.merge !== undefined && earlier.merge !== undefined) {
        latest.set(key, earlier);
      } else if (write.ifExists === true) {
        // Two writes in a row: the earlier one's fields, then the update's on top (as the sync path
        // writes them, one after the other). An update alone would replace the document with its fields.
        latest.set(key, {
          ...write,
          doc: { ...earlier.doc, ...write.doc },
          ifExists: earlier.ifExists === true,
        });
      } else {
        latest.set(key, write);
      }
    }
  }
  return [...latest.values()];
}

/** The durable part of several consecutive plans of one partition as one plan (Kafka outputs left out). */
export function mergePlans(plans: readonly FlushPlan[]): FlushPlan {
  const first = plans[0]!;
  const last = plans[plans.length - 1]!;
  const sum = (pick: (plan: FlushPlan) => number) => plans.reduce((total, plan) => total + pick(plan), 0);
  return {
    topic: first.topic,
    partition: first.partition,
    deadLetters: [],
    budgetEvents: [],
    budgetStates: [],
    holdDecisions: [],
    sessionSummaries: plans.flatMap((plan) => plan.sessionSummaries),
    usage: plans.flatMap((plan) => plan.usage),
    adjustments: plans.flatMap((plan) => plan.adjustments),
    ledgerWrites: coalesceDocs(plans.map((plan) => plan.ledgerWrites)),
    registryWrites: coalesceDocs(plans.map((plan) => plan.registryWrites)),
    projections: coalesceProjections(plans.map((plan) => plan.projections)),
    accountWrites: coalesceDocs(plans.map((plan) => plan.accountWrites)),
    firstOffset: first.firstOffset,
    commitOffset: last.commitOffset,
    plannedAt: last.plannedAt,
    stats: {
      consumed: sum((plan) => plan.stats.consumed),
      applied: sum((plan) => plan.stats.applied),
      replayedSkipped: sum((plan) => plan.stats.replayedSkipped),
      deadLettered: sum((plan) => plan.stats.deadLettered),
      duplicates: sum((plan) => plan.stats.duplicates),
      dedupeForgotten: sum((plan) => plan.stats.dedupeForgotten),
    },
    timings: { decode: 0, load: 0, apply: 0, project: 0 },
  };
}
