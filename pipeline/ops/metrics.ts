/**
 * The processor's Prometheus metrics (docs/operations.md says what each means and what to do about it).
 *
 * One `ProcessorMetrics` per process, over its own prom-client `Registry` (never the global one), so
 * tests and benchmarks can make as many as they like. Every method says what happened; the processor
 * calls them where it happens and never touches prom-client itself. Label values are bounded: reason
 * codes, budget event types, store names and partition numbers, never account or app ids.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { BudgetEvent } from "../../schemas/outputs.ts";
import type { ErrorCode } from "../errors.ts";

/** The documents a write-behind cycle writes, by where they go (label `store` of the written counter). */
export const WRITTEN_STORES = [
  "mongodb_accounts",
  "mongodb_ledgers",
  "mongodb_projections",
  "clickhouse_rows",
] as const;
export type WrittenStore = (typeof WRITTEN_STORES)[number];

/** What failed or was retried (label `store` of the error and retry counters). */
export const FAILING_STORES = ["mongodb", "clickhouse", "kafka", "other"] as const;
export type FailingStore = (typeof FAILING_STORES)[number];

/** The budget event types of schemas/outputs.ts (label `event`). */
export type BudgetEventType = BudgetEvent["event"];

/** What a write-behind cycle (or a synchronous flush) wrote, counted when it is durable. */
export interface CycleWritten {
  /** Wall time of the cycle's writes, seconds (retries included). */
  seconds: number;
  /** Account documents written (AppUsers, MozaiksUsers). */
  accounts: number;
  /** Revenue ledger documents written (RevenueSharing). */
  ledgers: number;
  /** Projection documents written (pause states, sessions, summaries, apps, workflows, ...). */
  projections: number;
  /** Rows inserted into ClickHouse (usage rows, session rows, the partition_progress row). */
  rows: number;
}

/**
 * The parts of a durable plan or cycle that planDurable counts (pipeline/processor's FlushPlan has them):
 * its stats, one dead letter per dead-lettered record, and its budget events.
 */
export interface DurablePlan {
  stats: {
    consumed: number;
    applied: number;
    replayedSkipped: number;
    duplicates: number;
    /** Ids inside the dedupe horizon forgotten for an account's cap (absent: none). */
    dedupeForgotten?: number;
  };
  deadLetters: ReadonlyArray<{ reason_code: ErrorCode }>;
  budgetEvents: ReadonlyArray<{ event: BudgetEventType }>;
}

/** The two calls of the Kafka admin client the lag poller needs (kafkajs' `Admin` has both). */
export interface OffsetsAdmin {
  fetchTopicOffsets(topic: string): Promise<Array<{ partition: number; high: string; low: string }>>;
  fetchOffsets(options: {
    groupId: string;
    topics: string[];
  }): Promise<Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>>;
}

export interface LagPoller {
  /** Polls once now (also what the timer does): the lag of each partition this member owns, as set. */
  poll(): Promise<Map<number, number>>;
  /** Stops the timer; a poll in flight finishes but sets nothing. */
  stop(): void;
}

export interface MetricsOptions {
  /** `AGENTMETER_MAX_PENDING_RECORDS`, exported as a gauge so alerts compare against the real bound. */
  maxPendingRecords?: number;
  /** `AGENTMETER_MAX_STORE_LAG_MS` in seconds, exported as a gauge for the same reason. */
  maxStoreLagSeconds?: number;
  /** Registers the process and Node.js default metrics (`process_*`, `nodejs_*`); default true. */
  defaultMetrics?: boolean;
}

/** Seconds buckets for a write-behind cycle: a few ms on an idle stack to a minute behind a slow store. */
const CYCLE_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
/** Decisions: milliseconds when the processor keeps up, minutes when it works off a backlog. */
const DECISION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800];

/**
 * Committed offset vs the partition's end, per partition: what the group has not yet committed. A
 * partition with no commit yet, or whose commit is older than the log start (retention), lags by every
 * record the log still holds.
 */
export function consumerLag(
  ends: ReadonlyArray<{ partition: number; high: string; low: string }>,
  committed: ReadonlyArray<{ partition: number; offset: string }>,
): Map<number, number> {
  const commits = new Map(committed.map((entry) => [entry.partition, BigInt(entry.offset)]));
  const lag = new Map<number, number>();
  for (const { partition, high, low } of ends) {
    const end = BigInt(high);
    const start = BigInt(low);
    const commit = commits.get(partition);
    const from = commit === undefined || commit < start ? start : commit;
    lag.set(partition, Number(end > from ? end - from : 0n));
  }
  return lag;
}

export class ProcessorMetrics {
  readonly registry: Registry;
  private readonly consumed: Counter;
  private readonly applied: Counter;
  private readonly deadLetters: Counter<"reason_code">;
  private readonly duplicates: Counter;
  private readonly replays: Counter;
  private readonly dedupeForgotten: Counter;
  private readonly budgetEvents: Counter<"event">;
  private readonly lag: Gauge<"partition">;
  private readonly lagPollFailures: Counter;
  private readonly tickFailures: Counter;
  private readonly cycleSeconds: Histogram;
  private readonly decisionSeconds: Histogram<"stage">;
  private readonly written: Counter<"store">;
  private readonly pendingRecords: Gauge<"partition">;
  private readonly storeLag: Gauge<"partition">;
  private readonly storeErrors: Counter<"store">;
  private readonly storeRetries: Counter<"store">;
  private readonly assignedPartitions: Gauge;
  private readonly readyGauge: Gauge;
  /** Partitions this member owns (from partitionsAssigned/partitionRevoked): the lag poller reports these. */
  private readonly owned = new Set<number>();
  /** Partitions with per-partition series, owned or not: what an assignment that leaves them out removes. */
  private readonly labelled = new Set<number>();

  constructor(options: MetricsOptions = {}) {
    this.registry = new Registry();
    const registers = [this.registry];
    this.consumed = new Counter({
      name: "agentmeter_records_consumed_total",
      help: "Input records taken from Kafka and counted once their cycle is durable (consumed = applied + dead-lettered + replay-skipped).",
      registers,
    });
    this.applied = new Counter({
      name: "agentmeter_records_applied_total",
      help: "Input records applied by the billing core and written to the stores.",
      registers,
    });
    this.deadLetters = new Counter({
      name: "agentmeter_records_dead_lettered_total",
      help: "Input records sent to the dead-letter topic, by reason code.",
      labelNames: ["reason_code"],
      registers,
    });
    this.duplicates = new Counter({
      name: "agentmeter_records_duplicate_total",
      help: "Records ignored as producer duplicates (a record_id already applied within the dedupe horizon).",
      registers,
    });
    this.replays = new Counter({
      name: "agentmeter_records_replay_skipped_total",
      help: "Re-delivered records skipped because the stores already hold them (at or below a watermark).",
      registers,
    });
    this.dedupeForgotten = new Counter({
      name: "agentmeter_dedupe_ids_forgotten_total",
      help: "Record ids inside the dedupe horizon forgotten because an account reached the dedupe cap (dedupe.max_entries): a re-send of one would be billed again.",
      registers,
    });
    this.budgetEvents = new Counter({
      name: "agentmeter_budget_events_total",
      help: "Budget events published, by event type.",
      labelNames: ["event"],
      registers,
    });
    this.lag = new Gauge({
      name: "agentmeter_consumer_lag_records",
      help: "Records between the group's committed offset and the partition's end, per partition this member owns.",
      labelNames: ["partition"],
      registers,
    });
    this.lagPollFailures = new Counter({
      name: "agentmeter_consumer_lag_poll_failures_total",
      help: "Consumer lag polls that failed (the lag gauges keep their last values).",
      registers,
    });
    this.tickFailures = new Counter({
      name: "agentmeter_tick_write_failures_total",
      help: "Tick records the processor could not append to its input partitions: holds on idle partitions do not expire while they fail.",
      registers,
    });
    this.cycleSeconds = new Histogram({
      name: "agentmeter_write_behind_cycle_duration_seconds",
      help: "Duration of a write-behind cycle (or synchronous flush): ClickHouse, ledgers, projections, accounts.",
      buckets: CYCLE_BUCKETS,
      registers,
    });
    this.decisionSeconds = new Histogram({
      name: "agentmeter_decision_latency_seconds",
      help: "Age of a batch's oldest record (since its Kafka log timestamp) when the processor took the batch (stage fetched) and when its decisions were published (stage published): what a hold's reserve or a budget view waits for, less the client's own legs.",
      labelNames: ["stage"],
      buckets: DECISION_BUCKETS,
      registers,
    });
    this.written = new Counter({
      name: "agentmeter_store_documents_written_total",
      help: "Documents (MongoDB) and rows (ClickHouse) written by durable cycles, by store.",
      labelNames: ["store"],
      registers,
    });
    this.pendingRecords = new Gauge({
      name: "agentmeter_pending_records",
      help: "Records applied and published but not yet in the stores, per partition.",
      labelNames: ["partition"],
      registers,
    });
    this.storeLag = new Gauge({
      name: "agentmeter_store_lag_seconds",
      help: "Age of the oldest record not yet in the stores, per partition (0 when nothing is pending).",
      labelNames: ["partition"],
      registers,
    });
    this.storeErrors = new Counter({
      name: "agentmeter_store_errors_total",
      help: "Failed store operations (retried or not), by store.",
      labelNames: ["store"],
      registers,
    });
    this.storeRetries = new Counter({
      name: "agentmeter_store_retries_total",
      help: "Store operations retried after a failure, by store.",
      labelNames: ["store"],
      registers,
    });
    this.assignedPartitions = new Gauge({
      name: "agentmeter_assigned_partitions",
      help: "Input partitions assigned to this member.",
      registers,
    });
    this.readyGauge = new Gauge({
      name: "agentmeter_ready",
      help: "1 when the last readiness check (run by /readyz and by each scrape) passed, else 0.",
      registers,
    });
    const bounds: Array<[string, string, number | undefined]> = [
      [
        "agentmeter_pending_records_bound",
        "AGENTMETER_MAX_PENDING_RECORDS: pending records per partition past which it stops fetching.",
        options.maxPendingRecords,
      ],
      [
        "agentmeter_store_lag_bound_seconds",
        "AGENTMETER_MAX_STORE_LAG_MS in seconds: store lag past which a partition stops fetching.",
        options.maxStoreLagSeconds,
      ],
    ];
    for (const [name, help, value] of bounds)
      if (value !== undefined) new Gauge({ name, help, registers }).set(value);
    for (const code of WRITTEN_STORES) this.written.inc({ store: code }, 0);
    for (const store of FAILING_STORES) {
      this.storeErrors.inc({ store }, 0);
      this.storeRetries.inc({ store }, 0);
    }
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Counts a plan (or a write-behind cycle) once it is durable: records consumed, applied, replay-skipped,
   * duplicates, dedupe ids forgotten for the cap, dead letters by reason code and budget events by type.
   * Counting everything at this one point keeps consumed = applied + dead-lettered + replay-skipped exact
   * at every scrape.
   */
  planDurable(plan: DurablePlan): void {
    this.recordsConsumed(plan.stats.consumed);
    this.recordsApplied(plan.stats.applied);
    this.replaysSkipped(plan.stats.replayedSkipped);
    this.duplicatesIgnored(plan.stats.duplicates);
    this.dedupeIdsForgotten(plan.stats.dedupeForgotten ?? 0);
    const codes = new Map<ErrorCode, number>();
    for (const letter of plan.deadLetters)
      codes.set(letter.reason_code, (codes.get(letter.reason_code) ?? 0) + 1);
    for (const [code, n] of codes) this.deadLettered(code, n);
    const events = new Map<BudgetEventType, number>();
    for (const { event } of plan.budgetEvents) events.set(event, (events.get(event) ?? 0) + 1);
    for (const [event, n] of events) this.budgetEventPublished(event, n);
  }

  /** Records counted once their cycle is durable (the plan's `stats.consumed`). */
  recordsConsumed(n: number): void {
    if (n > 0) this.consumed.inc(n);
  }

  recordsApplied(n: number): void {
    if (n > 0) this.applied.inc(n);
  }

  /** Records dead-lettered with this reason code (one call per code). */
  deadLettered(code: ErrorCode, n = 1): void {
    if (n > 0) this.deadLetters.inc({ reason_code: code }, n);
  }

  duplicatesIgnored(n: number): void {
    if (n > 0) this.duplicates.inc(n);
  }

  replaysSkipped(n: number): void {
    if (n > 0) this.replays.inc(n);
  }

  /** Record ids inside the dedupe horizon forgotten for an account's cap (pipeline/core/dedupe.ts). */
  dedupeIdsForgotten(n: number): void {
    if (n > 0) this.dedupeForgotten.inc(n);
  }

  /** Budget events of this type published to the events topic. */
  budgetEventPublished(event: BudgetEventType, n = 1): void {
    if (n > 0) this.budgetEvents.inc({ event }, n);
  }

  /**
   * A batch's oldest record was `seconds` old (since its log time) at this stage of the decision path.
   * Clocks of producer and processor differ across machines: a negative age counts as 0.
   */
  decisionAge(stage: "fetched" | "published", seconds: number): void {
    this.decisionSeconds.observe({ stage }, Math.max(0, seconds));
  }

  /** A durable write-behind cycle (or synchronous flush): its duration and what it wrote. */
  cycleWritten(cycle: CycleWritten): void {
    this.cycleSeconds.observe(cycle.seconds);
    this.written.inc({ store: "mongodb_accounts" }, cycle.accounts);
    this.written.inc({ store: "mongodb_ledgers" }, cycle.ledgers);
    this.written.inc({ store: "mongodb_projections" }, cycle.projections);
    this.written.inc({ store: "clickhouse_rows" }, cycle.rows);
  }

  /** A store call failed (whether or not it will be retried). */
  storeError(store: FailingStore): void {
    this.storeErrors.inc({ store });
  }

  /** A tick record was not written (the next interval tries again). */
  tickFailed(): void {
    this.tickFailures.inc();
  }

  /** A failed store call is about to be retried. */
  storeRetry(store: FailingStore): void {
    this.storeRetries.inc({ store });
  }

  /** What a partition's write-behind stage holds: records not yet in the stores, and the oldest's age. */
  pending(partition: number, records: number, lagSeconds: number): void {
    const labels = { partition: String(partition) };
    this.pendingRecords.set(labels, records);
    this.storeLag.set(labels, lagSeconds);
    this.labelled.add(partition);
  }

  /** Sets one partition's consumer lag (what the lag poller does for each owned partition). */
  consumerLag(partition: number, records: number): void {
    this.lag.set({ partition: String(partition) }, records);
    this.labelled.add(partition);
  }

  /**
   * The member's assignment after a group join: the partitions it no longer owns lose their series
   * (as partitionRevoked), and the lag poller reports exactly these from now on.
   */
  partitionsAssigned(partitions: readonly number[]): void {
    const next = new Set(partitions);
    for (const partition of [...this.owned, ...this.labelled])
      if (!next.has(partition)) this.partitionRevoked(partition);
    for (const partition of next) this.owned.add(partition);
    this.assignedPartitions.set(this.owned.size);
  }

  /** The partition is no longer this member's: its per-partition series are removed, not left stale. */
  partitionRevoked(partition: number): void {
    const labels = { partition: String(partition) };
    this.lag.remove(labels);
    this.pendingRecords.remove(labels);
    this.storeLag.remove(labels);
    this.owned.delete(partition);
    this.labelled.delete(partition);
    this.assignedPartitions.set(this.owned.size);
  }

  /** The partitions this member owns, ascending. */
  get ownedPartitions(): number[] {
    return [...this.owned].sort((a, b) => a - b);
  }

  /** The outcome of a readiness check (the health server calls it for each /readyz and each scrape). */
  readinessObserved(ready: boolean): void {
    this.readyGauge.set(ready ? 1 : 0);
  }

  /**
   * Polls the group's committed offsets and the topic's end offsets every `intervalMs` and sets the lag
   * of each partition this member owns. Polls never overlap (a tick while one is in flight is skipped);
   * a failed poll counts `agentmeter_consumer_lag_poll_failures_total` and is passed to `onError`.
   * The timer does not keep the process alive.
   */
  startLagPoller(
    admin: OffsetsAdmin,
    groupId: string,
    topic: string,
    intervalMs: number,
    onError: (error: unknown) => void = () => {},
  ): LagPoller {
    let stopped = false;
    let inFlight: Promise<Map<number, number>> | undefined;
    const pollOnce = async (): Promise<Map<number, number>> => {
      const [ends, groups] = await Promise.all([
        admin.fetchTopicOffsets(topic),
        admin.fetchOffsets({ groupId, topics: [topic] }),
      ]);
      const committed = groups.find((group) => group.topic === topic)?.partitions ?? [];
      const all = consumerLag(ends, committed);
      const mine = new Map<number, number>();
      for (const [partition, records] of all) {
        if (!this.owned.has(partition)) continue;
        mine.set(partition, records);
        if (!stopped) this.consumerLag(partition, records);
      }
      return mine;
    };
    const poll = (): Promise<Map<number, number>> => {
      inFlight ??= pollOnce().finally(() => {
        inFlight = undefined;
      });
      return inFlight;
    };
    const timer = setInterval(() => {
      if (inFlight !== undefined) return;
      poll().catch((error: unknown) => {
        this.lagPollFailures.inc();
        onError(error);
      });
    }, intervalMs);
    timer.unref();
    return {
      poll,
      stop: () => {
        stopped = true;
        clearInterval(timer);
      },
    };
  }

  /** The registry in Prometheus' text format, and its content type (what /metrics serves). */
  async text(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  /**
   * Every series name a PromQL expression may use: each metric's name, and for histograms its
   * `_bucket`, `_sum` and `_count` series (the dashboard and alert tests check against this).
   */
  seriesNames(): string[] {
    const names: string[] = [];
    for (const metric of this.registry.getMetricsAsArray()) {
      const name = metric.name;
      names.push(name);
      if (String(metric.type) === "histogram") names.push(`${name}_bucket`, `${name}_sum`, `${name}_count`);
    }
    return names.sort();
  }
}

/**
 * Best-effort store of an error, by the client that raised it: the MongoDB driver's errors are named
 * `Mongo*`, kafkajs' `KafkaJS*`, the ClickHouse client's `ClickHouseError`. Where the caller knows
 * which store it called, it should say so instead.
 */
export function storeOfError(error: unknown): FailingStore {
  const name = error instanceof Error ? `${error.name} ${error.constructor.name}` : "";
  if (/\bMongo/.test(name)) return "mongodb";
  if (/\bKafkaJS/.test(name)) return "kafka";
  if (/ClickHouse/i.test(name)) return "clickhouse";
  return "other";
}

/**
 * Metrics turned off (`AGENTMETER_METRICS_PORT=0`, and the benchmark's "metrics off" run): nothing is
 * counted and no lag is polled, so what serving metrics costs can be measured against it.
 */
export class DisabledMetrics extends ProcessorMetrics {
  constructor() {
    super({ defaultMetrics: false });
  }

  override planDurable(): void {}
  override dedupeIdsForgotten(): void {}
  override cycleWritten(): void {}
  override decisionAge(): void {}
  override storeError(): void {}
  override storeRetry(): void {}
  override tickFailed(): void {}
  override pending(): void {}
  override consumerLag(): void {}
  override partitionsAssigned(): void {}
  override partitionRevoked(): void {}
  override readinessObserved(): void {}
  override startLagPoller(): LagPoller {
    return { poll: async () => new Map(), stop: () => undefined };
  }
}
