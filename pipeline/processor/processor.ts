import { setTimeout as sleep } from "node:timers/promises";
import type { Admin, Consumer, EachBatchPayload, Kafka, Producer } from "kafkajs";
import type { MongoClient } from "mongodb";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { applyMigrations } from "../../sinks/clickhouse/migrations.ts";
import { SessionSummariesSink } from "../../sinks/clickhouse/session-summaries.ts";
import { UsageEventsSink } from "../../sinks/clickhouse/usage-events.ts";
import { KafkaEventBus } from "../../sinks/kafka/event-bus.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import {
  MongoAccountStore,
  MongoHoldRegistryStore,
  MongoLedgerStore,
} from "../../sinks/mongo/document-stores.ts";
import { IndexRegistry } from "../../sinks/mongo/indexes.ts";
import type { MongoLayout } from "../../sinks/mongo/layout.ts";
import { Limiter } from "../../sinks/mongo/limiter.ts";
import { MongoProjectionStore } from "../../sinks/mongo/projection-store.ts";
import { type CreditAuthorization, creditAuthorization } from "../auth/signature.ts";
import type { Config } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import { AgentmeterError, isAgentmeterError } from "../errors.ts";
import { createKafka, ensureTopics, idempotentProducer } from "../kafka.ts";
import type { Logger } from "../log.ts";
import { type LagPoller, ProcessorMetrics } from "../ops/metrics.ts";
import {
  combineReadiness,
  type Liveness,
  LoopWatchdog,
  type Readiness,
  StorePings,
} from "../ops/readiness.ts";
import { clickHouseFor, mongoLayoutFor } from "../runtime/clients.ts";
import {
  readTopicSettings,
  type TopicSettings,
  topicSettingProblems,
  topicSettingWarnings,
} from "../topic-settings.ts";
import { ApplyFailureBudget } from "./apply-failures.ts";
import { BatchLease } from "./batch-lease.ts";
import { CostWatch } from "./cost-watch.ts";
import { within } from "./deadline.ts";
import { type FlushTimings, flush, writeStores } from "./flush.ts";
import { type InputMessage, PartitionWorker, type Placement } from "./partition-worker.ts";
import type { FlushPlan } from "./plan.ts";
import { type FlushTargets, targetKey } from "./ports.ts";
import { type StartupWait, untilAvailable } from "./startup-wait.ts";
import { isDeterministicStoreError } from "./store-errors.ts";
import { retryStores } from "./store-retry.ts";
import { TickClock } from "./tick-clock.ts";
import { checkInputTopic } from "./topic-check.ts";
import { countDurable, type ProcessorTotals, zeroTotals } from "./totals.ts";
import { type PendingBounds, WriteBehind } from "./write-behind.ts";

/**
 * What eachBatch throws: kafkajs restarts its consumer (rejoin, fetch from the committed offsets) after an
 * error it deems retriable, and stops it for good otherwise; for instance after the non-retriable
 * OUT_OF_ORDER_SEQUENCE_NUMBER a broker restart gives the producer (CI stop 23: the outages test's processor
 * stopped consuming and never caught up). Nothing is committed past the stores, so a restart loses
 * nothing: the error is logged and thrown again as retriable, without its cause, which kafkajs would
 * follow to the original's verdict.
 */
export function restartingError(partition: number, error: unknown, logger: Logger): Error {
  logger.error({ err: error, partition }, "batch failed: the consumer restarts and fetches again");
  const restart = new AgentmeterError(
    "SERVICE_UNAVAILABLE",
    `partition ${partition}: batch failed (${error instanceof Error ? error.message : String(error)}); the consumer restarts`,
  );
  return Object.assign(restart, { retriable: true });
}

/** A loop with no fetch and no heartbeat for this long is stuck (above kafkajs' rebalance timeout). */
const STUCK_AFTER_MS = 120_000;
/** How long /readyz waits for each store's ping. */
const PING_TIMEOUT_MS = 5_000;
/** How often the consumer lag of the owned partitions is read from the brokers. */
const LAG_POLL_MS = 15_000;
/** How often the pending-records and store-lag gauges are set from the stages, besides on each change. */
const PENDING_GAUGES_MS = 1_000;

/** How long a stopping processor waits for its batches in hand and for its stages to write what they hold. */
const STOP_DRAIN_MS = 30_000;
/** Then, how long it waits for the dropped stages' publishes still out. */
const STOP_ABANDON_MS = 15_000;
/** Then, how long each client gets to close (five of them, the consumer first: it leaves the group). */
const STOP_CLOSE_MS = 5_000;
/**
 * The most stop() takes, whatever the stores do: a deployment's grace period (Kubernetes'
 * terminationGracePeriodSeconds, compose's stop_grace_period) must be longer.
 */
export const STOP_BUDGET_MS = STOP_DRAIN_MS + STOP_ABANDON_MS + 6 * STOP_CLOSE_MS;

/** MongoDB write statements in flight per process: two bulk commands (see sinks/mongo/limiter.ts). */
const MONGO_IN_FLIGHT = 32;
/** Between tries of a record the core fails on that cannot be dead-lettered (see run). */
const APPLY_FAILURE_RETRY_MS = 5_000;

/** What a durable cycle or flush wrote, for the metrics (ClickHouse: usage rows, summaries, one progress row). */
function cycleFigures(plan: FlushPlan, seconds: number) {
  return {
    seconds,
    accounts: plan.accountWrites.length,
    ledgers: plan.ledgerWrites.length,
    projections: plan.projections.length,
    rows: plan.usage.length + plan.sessionSummaries.length + 1,
  };
}

function countBy(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

interface BatchContext {
  topic: string;
  partition: number;
  lease: BatchLease;
  stillOurs: () => boolean;
  resolveOffset: (offset: string) => void;
  commit: (offset: string) => Promise<void>;
}

/**
 * The stream processor: a consumer-group member that turns each fetched partition batch into a plan
 * (partition-worker.ts), publishes its decisions at once and hands the writes to the partition's
 * write-behind stage (or, in write mode `sync`, flushes them before fetching on). Backpressure: a
 * partition whose stage holds more than the bound stops fetching; a failing store is retried with
 * backoff while the member keeps heartbeating; offsets are committed only as far as the stores hold.
 */
export class Processor {
  readonly totals: ProcessorTotals = zeroTotals();
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly mongo: MongoClient;
  private readonly clickhouse: ClickHouseClient;
  private readonly usageEvents: UsageEventsSink;
  private readonly layout: MongoLayout;
  private readonly indexes: IndexRegistry;
  private readonly knownShared = new Set<string>();
  private readonly applyFailures: ApplyFailureBudget;
  private readonly costWatch: CostWatch;
  /** What flushes and cycles write to: the adapters of the ports. */
  private readonly targets: FlushTargets;
  private readonly workers = new Map<number, PartitionWorker>();
  /** Per partition, the writes behind its decisions (write mode `behind`). */
  private readonly stages = new Map<number, WriteBehind>();
  /** Dropped stages' last cycles: a partition's next worker loads only after they settle. */
  private readonly settling = new Map<number, Promise<void>>();
  /** Partitions written synchronously up to this offset, after the stores refused a cycle of theirs. */
  private readonly syncUntil = new Map<number, bigint>();
  private readonly bounds: PendingBounds;
  /** Partitions whose fetching is held back by the pending bound (logged once per episode). */
  private readonly heldBack = new Set<number>();
  private batchesInHand = 0;
  private stopping = false;
  /** Counters, gauges and histograms served on /metrics (docs/operations.md). */
  readonly metrics: ProcessorMetrics;
  private readonly watchdog = new LoopWatchdog(STUCK_AFTER_MS);
  private readonly pings: StorePings;
  private inGroup = false;
  private lagAdmin: Admin | undefined;
  private lagPoller: LagPoller | undefined;
  /** Refreshes the pending-records and store-lag gauges: they age while nothing is enqueued or written. */
  private pendingGauges: NodeJS.Timeout | undefined;
  /** Input partitions this member owns (from its last group join). */
  private assigned: readonly number[] = [];
  /** The partition count the input topic has now (from the placement check), for tick keys. */
  private partitionCount = 0;
  private readonly ticks: TickClock;
  /** The input topic as the stores know it, checked at start and on every join (see topic-check.ts). */
  private placement: Promise<Placement> | undefined;
  private readonly heartbeatIntervalMs: number;
  /** Whether credit records must carry the operator's signature (docs/security.md). */
  private readonly creditPolicy: CreditAuthorization;

  constructor(
    private readonly config: Config,
    private readonly billing: BillingConfig,
    private readonly logger: Logger,
    options: { metrics?: ProcessorMetrics } = {},
  ) {
    this.metrics =
      options.metrics ??
      new ProcessorMetrics({
        maxPendingRecords: config.AGENTMETER_MAX_PENDING_RECORDS,
        maxStoreLagSeconds: config.AGENTMETER_MAX_STORE_LAG_MS / 1000,
        defaultMetrics: false,
      });
    this.kafka = createKafka(config, logger);
    this.creditPolicy = creditAuthorization(config);
    this.applyFailures = new ApplyFailureBudget(config.AGENTMETER_APPLY_FAILURE_LIMIT);
    this.heartbeatIntervalMs = Math.floor(config.AGENTMETER_SESSION_TIMEOUT_MS / 10);
    this.bounds = {
      maxRecords: config.AGENTMETER_MAX_PENDING_RECORDS,
      maxLagMs: config.AGENTMETER_MAX_STORE_LAG_MS,
    };
    this.consumer = this.kafka.consumer({
      groupId: config.AGENTMETER_GROUP_ID,
      sessionTimeout: config.AGENTMETER_SESSION_TIMEOUT_MS,
      heartbeatInterval: this.heartbeatIntervalMs,
      // Under a backlog a flush covers a whole fetch of its partition (about 6,000 records at the
      // default 4 MiB) and writes each touched document once. The whole fetch must have room for every
      // partition, or the partitions left out wait for the next fetch while the others flush.
      maxBytesPerPartition: config.AGENTMETER_FETCH_BYTES_PER_PARTITION,
      maxBytes: config.AGENTMETER_FETCH_BYTES_PER_PARTITION * config.AGENTMETER_PARTITIONS,
    });
    this.producer = idempotentProducer(this.kafka, logger);
    this.mongo = createMongo(config.MONGODB_URI, { timeoutMs: config.AGENTMETER_MONGO_TIMEOUT_MS });
    this.clickhouse = clickHouseFor(config);
    this.usageEvents = new UsageEventsSink(this.clickhouse, config.CLICKHOUSE_DATABASE);
    this.layout = mongoLayoutFor(this.mongo, config);
    this.indexes = new IndexRegistry(this.layout);
    const mongoLimiter = new Limiter(MONGO_IN_FLIGHT);
    this.targets = {
      bus: new KafkaEventBus(this.producer, {
        deadLetter: config.AGENTMETER_DLQ_TOPIC,
        events: config.AGENTMETER_EVENTS_TOPIC,
        state: config.AGENTMETER_STATE_TOPIC,
        holds: config.AGENTMETER_HOLDS_TOPIC,
      }),
      usageLog: this.usageEvents,
      summaries: new SessionSummariesSink(this.clickhouse, config.CLICKHOUSE_DATABASE),
      ledgers: new MongoLedgerStore(this.layout, mongoLimiter),
      registry: new MongoHoldRegistryStore(this.layout, mongoLimiter),
      projections: new MongoProjectionStore(this.layout, mongoLimiter),
      accounts: new MongoAccountStore(this.layout, mongoLimiter, this.indexes),
    };
    this.pings = new StorePings(
      {
        mongodb: () => this.mongo.db("admin").command({ ping: 1 }),
        clickhouse: () => this.clickhouse.ping(),
      },
      PING_TIMEOUT_MS,
    );
    this.ticks = new TickClock({
      producer: this.producer,
      topic: config.AGENTMETER_INPUT_TOPIC,
      intervalMs: config.AGENTMETER_TICK_INTERVAL_MS,
      creditPolicy: this.creditPolicy,
      // Only partitions with accounts a tick would change (holds, dated grants, periods): others stay quiet.
      targets: () => ({
        partitions: this.assigned.filter((p) => this.workers.get(p)?.awaitsTicks !== false),
        partitionCount: this.partitionCount,
      }),
      logger,
      onFailure: () => this.metrics.tickFailed(),
    });
    this.costWatch = new CostWatch(
      this.clickhouse,
      config.CLICKHOUSE_DATABASE,
      { multiple: config.AGENTMETER_COST_MULTIPLE, refreshMs: config.AGENTMETER_COST_AVERAGES_REFRESH_MS },
      logger,
    );
  }

  /** For /healthz: the consumer loop fetched or heartbeated recently. */
  liveness(): Liveness {
    return this.watchdog.liveness();
  }

  /** For /readyz: in the consumer group, and every store answered within its timeout. */
  async readiness(): Promise<Readiness> {
    const group: Readiness = this.inGroup
      ? { ready: true, reasons: [] }
      : {
          ready: false,
          reasons: ["not in the consumer group (not joined yet, its consumer crashed, or stopping)"],
        };
    return combineReadiness(group, await this.pings.check());
  }

  /** Accounts held in memory over every partition this member works on (bounded per partition). */
  get cachedAccounts(): number {
    let total = 0;
    for (const worker of this.workers.values()) total += worker.cachedAccounts;
    return total;
  }

  /**
   * Refuses to start on topics an operator created without what the pipeline needs (topic-settings.ts),
   * which would otherwise show only later: a partition stopped for good by a dead letter the broker
   * refuses. Brokers that do not let this client read topic settings (an ACL without DescribeConfigs)
   * leave them unchecked, said in the log.
   */
  private async checkTopicSettings(admin: Admin): Promise<void> {
    let settings: TopicSettings;
    try {
      settings = await readTopicSettings(admin, this.config);
    } catch (error) {
      this.logger.warn({ err: error }, "topic settings not checked: the brokers did not describe them");
      return;
    }
    // Warnings first: an operator fixing a refusal learns everything else in the same restart.
    const maxBehindMs = this.billing.event_time.max_behind_seconds * 1000;
    for (const warning of topicSettingWarnings(settings, this.config, maxBehindMs)) this.logger.warn(warning);
    const problems = topicSettingProblems(settings, this.config);
    if (problems.length > 0) throw new AgentmeterError("CONFIG_INVALID", problems.join("; "));
  }

  async start(): Promise<void> {
    const wait: StartupWait = {
      deadlineMs: Date.now() + this.config.AGENTMETER_STARTUP_WAIT_MS,
      stopping: () => this.stopping,
      logger: this.logger,
    };
    await untilAvailable(
      "kafka topics",
      async () => {
        const admin = this.kafka.admin();
        await admin.connect();
        try {
          await ensureTopics(admin, this.config);
          await this.checkTopicSettings(admin);
        } finally {
          await admin.disconnect().catch(() => undefined);
        }
      },
      wait,
    );
    const migrated = await untilAvailable(
      "clickhouse migrations",
      () => applyMigrations(this.clickhouse, this.config.CLICKHOUSE_DATABASE),
      wait,
    );
    if (migrated.length > 0) this.logger.info({ versions: migrated }, "clickhouse migrations applied");
    await untilAvailable(
      "mongodb",
      async () => {
        await this.mongo.connect();
        await this.indexes.shared();
      },
      wait,
    );
    await this.producer.connect();
    await this.consumer.connect();
    // Whatever was cached may have been written by another member since: every (re)join starts cold.
    this.refreshPlacement();
    await this.placement;
    this.consumer.on(this.consumer.events.FETCH_START, () => this.watchdog.tick());
    this.consumer.on(this.consumer.events.HEARTBEAT, () => this.watchdog.tick());
    this.consumer.on(this.consumer.events.CRASH, () => {
      this.inGroup = false;
    });
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      this.inGroup = true;
      this.assigned = event.payload.memberAssignment[this.config.AGENTMETER_INPUT_TOPIC] ?? [];
      this.metrics.partitionsAssigned(this.assigned);
      // The group starts every partition again from its committed offset: what the stages still held is
      // fetched again, so they are dropped (their cycle in flight settles before the partition loads).
      for (const [partition, stage] of this.stages) this.dropStage(partition, stage);
      this.workers.clear();
      this.usageEvents.forgetAll();
      this.refreshPlacement();
      this.logger.info({ assignment: event.payload.memberAssignment }, "joined group");
    });
    await this.consumer.subscribe({ topic: this.config.AGENTMETER_INPUT_TOPIC, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.config.AGENTMETER_CONCURRENCY,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.ticks.start();
    const lagAdmin = this.kafka.admin();
    await lagAdmin.connect();
    this.lagAdmin = lagAdmin;
    this.lagPoller = this.metrics.startLagPoller(
      lagAdmin,
      this.config.AGENTMETER_GROUP_ID,
      this.config.AGENTMETER_INPUT_TOPIC,
      LAG_POLL_MS,
      (error) => this.logger.debug({ err: error }, "consumer lag poll failed"),
    );
    // Set on enqueue and on a durable cycle only, the gauges would freeze in a stall (no cycle ends, a
    // held-back partition enqueues nothing) at about the bound, however long the stores stay down.
    this.pendingGauges = setInterval(() => {
      for (const [partition, stage] of this.stages) this.reportPending(partition, stage);
    }, PENDING_GAUGES_MS);
    this.pendingGauges.unref();
    this.logger.info(
      { topic: this.config.AGENTMETER_INPUT_TOPIC, group: this.config.AGENTMETER_GROUP_ID },
      "processor started",
    );
  }

  /** Finishes the batch in hand (flush and commit), then leaves the group and closes every client. */
  async stop(): Promise<void> {
    this.stopping = true;
    this.ticks.stop();
    // No new batches (a batch fetched from now on is dropped unread, see eachBatch); the ones in hand
    // finish; then what the stages hold is written and committed. Not consumer.pause: with every
    // partition paused kafkajs' fetch loop spins without yielding, starving the writes a batch in hand
    // waits for, and the stop never ends (seen: a SIGTERMed processor at 95% CPU for 11 minutes).
    // One deadline for both: a batch in hand may wait on a store that does not answer (a sync flush's
    // retries end with the stop, but a hung call only with its timeout).
    const drainUntil = Date.now() + STOP_DRAIN_MS;
    while (this.batchesInHand > 0 && Date.now() < drainUntil) await sleep(20);
    const drained = Promise.allSettled([...this.stages.values()].map((stage) => stage.drain()));
    if (this.batchesInHand > 0 || !(await within(drained, Math.max(0, drainUntil - Date.now()))))
      this.logger.warn(
        { pending: this.pendingRecords(), batchesInHand: this.batchesInHand },
        "stores did not take the pending writes in time: their records will be fetched again",
      );
    for (const [partition, stage] of this.stages) this.dropStage(partition, stage);
    // A publish still out (a stage that failed, or the deadline) is retried by kafkajs, which connects
    // the producer again if it is closed under it, and that connection keeps the process alive: the
    // dropped stages end their publishes first (they retry no more once dropped).
    const abandoned = Promise.allSettled([...this.settling.values()]);
    if (!(await within(abandoned, STOP_ABANDON_MS)))
      this.logger.warn("publishes of the dropped stages did not end in time: closing the clients anyway");
    this.lagPoller?.stop();
    clearInterval(this.pendingGauges);
    await within(this.lagAdmin?.disconnect() ?? Promise.resolve(), STOP_CLOSE_MS);
    this.inGroup = false;
    // Every client is closed even if one fails to (a broker restarted under it, say): one left open
    // keeps the process alive with its sockets.
    const clients: [string, () => unknown][] = [
      ["kafka consumer", () => this.consumer.disconnect()],
      ["cost watch", () => this.costWatch.close()],
      ["kafka producer", () => this.producer.disconnect()],
      ["mongodb", () => this.mongo.close()],
      ["clickhouse", () => this.clickhouse.close()],
    ];
    for (const [client, close] of clients) {
      const closed = Promise.resolve()
        .then(close)
        .catch((error: unknown) =>
          this.logger.warn({ err: error, client }, "closing a client failed; closing the others"),
        );
      if (!(await within(closed, STOP_CLOSE_MS)))
        this.logger.warn({ client }, "a client did not close in time; closing the others");
    }
    this.logger.info({ totals: this.totals }, "processor stopped");
  }

  private async checkTopic(): Promise<Placement> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      return await checkInputTopic(
        admin,
        this.layout,
        this.usageEvents,
        this.config.AGENTMETER_INPUT_TOPIC,
        this.logger,
      );
    } finally {
      await admin.disconnect();
    }
  }

  private refreshPlacement(): void {
    const placement = this.checkTopic();
    // Awaited by the next batch; until then a failure must not surface as an unhandled rejection.
    placement.then(
      (known) => {
        this.partitionCount = known.partitionCounts[known.partitionCounts.length - 1] ?? 0;
      },
      (error: unknown) => this.logger.warn({ err: error }, "input topic check failed; retrying"),
    );
    this.placement = placement;
  }

  /** The placement of the current assignment; a failed check is tried again (a store may have been down). */
  private async currentPlacement(): Promise<Placement> {
    try {
      return await this.placement!;
    } catch (error) {
      this.refreshPlacement();
      throw error;
    }
  }

  private worker(topic: string, partition: number, placement: Placement): PartitionWorker {
    let worker = this.workers.get(partition);
    if (worker === undefined) {
      worker = new PartitionWorker(
        topic,
        partition,
        {
          accounts: this.targets.accounts,
          ledgers: this.targets.ledgers,
          registry: this.targets.registry,
          knownShared: this.knownShared,
          costWatch: this.costWatch,
          billing: this.billing,
          maxRecordBytes: this.config.AGENTMETER_MAX_RECORD_BYTES,
          maxCachedAccounts: this.config.AGENTMETER_MAX_CACHED_ACCOUNTS,
          maxStateMessageBytes: this.config.AGENTMETER_MAX_STATE_MESSAGE_BYTES,
          creditPolicy: this.creditPolicy,
          logger: this.logger,
          now: () => new Date(),
          applyFailures: this.applyFailures,
        },
        placement,
      );
      this.workers.set(partition, worker);
    }
    return worker;
  }

  private async onBatch(payload: EachBatchPayload): Promise<void> {
    if (this.stopping || payload.batch.messages.length === 0) return;
    this.batchesInHand++;
    try {
      await this.takeBatch(payload);
    } finally {
      this.batchesInHand--;
    }
  }

  private async takeBatch({
    batch,
    heartbeat,
    resolveOffset,
    commitOffsetsIfNecessary,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    const lease = new BatchLease(heartbeat, this.heartbeatIntervalMs);
    const ctx: BatchContext = {
      topic: batch.topic,
      partition: batch.partition,
      lease,
      stillOurs: () => isRunning() && !isStale() && !lease.lost,
      resolveOffset,
      commit: (offset) =>
        commitOffsetsIfNecessary({
          topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset }] }],
        }),
    };
    try {
      const settling = this.settling.get(batch.partition);
      if (settling !== undefined) {
        await settling;
        this.settling.delete(batch.partition);
      }
      const placement = await this.withRetry(() => this.currentPlacement(), ctx.stillOurs);
      // A batch fetched before a seek (a dropped stage fetching again from what the stores hold) or a
      // rebalance is stale: applying it would move accounts past the records the seek fetches again,
      // which would then be skipped as replays and lost. kafkajs delivers from the new position next.
      if (isStale() || !isRunning()) return;
      const worker = this.worker(batch.topic, batch.partition, placement);
      this.observeAge("fetched", batch.messages);
      if (this.writesSync(batch.partition, batch.messages[0]!.offset)) {
        await this.run(worker, batch.messages, ctx);
      } else {
        await this.runBehind(worker, this.stage(batch.partition, placement.source), batch.messages, ctx);
      }
    } catch (error) {
      // Memory may be ahead of the stores: forget it, and fetch again from the first offset not durable.
      this.recover(batch.partition, error);
      // A batch that stopped being ours (a rebalance, or the coordinator restarted with the broker) gave
      // up its retries with whatever the last attempt said: abandoned like a lost ownership, not thrown.
      if (
        isAgentmeterError(error, "OWNERSHIP_LOST") ||
        isDeterministicStoreError(error) ||
        !ctx.stillOurs()
      ) {
        // Nothing past the stores was committed; the partition is fetched again from what they hold
        // (recover), from the last resolved offset, or by its new owner.
        this.logger.warn(
          { err: error, partition: batch.partition },
          "batch abandoned: fetched again from what the stores hold",
        );
        return;
      }
      throw restartingError(batch.partition, error, this.logger);
    } finally {
      lease.release();
    }
  }

  /** Whether this partition's batch starting at `offset` is written before the next is fetched. */
  private writesSync(partition: number, offset: string): boolean {
    if (this.config.AGENTMETER_WRITE_MODE === "sync") return true;
    const until = this.syncUntil.get(partition);
    if (until === undefined) return false;
    if (BigInt(offset) <= until) return true;
    this.syncUntil.delete(partition);
    return false;
  }

  private stage(partition: number, source: string): WriteBehind {
    let stage = this.stages.get(partition);
    if (stage === undefined) {
      const created: WriteBehind = new WriteBehind(partition, source, {
        publish: (decisions) =>
          this.withRetry(
            () => this.targets.bus.publish(decisions),
            () => !created.dropped,
            true,
          ),
        write: async (cycle, checkpoint) => {
          const started = performance.now();
          const timings = await this.withRetry(
            () => writeStores(cycle, this.targets, checkpoint),
            () => !created.dropped,
            true,
          );
          this.metrics.cycleWritten(cycleFigures(cycle, (performance.now() - started) / 1000));
          return timings;
        },
        durable: (cycle, plans) => {
          // Counted even when the stage was dropped meanwhile: the stores hold these records now, so
          // whoever fetches them again skips them as replays, and they must be counted applied here.
          this.count(cycle);
          // The plans, not the cycle: a cycle carries no Kafka outputs (published before it was queued).
          for (const plan of plans) this.metrics.planDurable(plan);
          // A dropped stage's partition has a new worker (or none): its memory is not this cycle's.
          if (created.dropped) return;
          this.workers.get(partition)?.durable(cycle);
          this.reportPending(partition, created);
          if (this.logger.isLevelEnabled("debug"))
            this.logger.debug(
              { partition, records: cycle.stats.consumed, accountDocs: cycle.accountWrites.length },
              "cycle written",
            );
        },
        commit: (offset) =>
          this.consumer.commitOffsets([{ topic: this.config.AGENTMETER_INPUT_TOPIC, partition, offset }]),
        failed: (error) => this.recover(partition, error),
        logger: this.logger,
        minIntervalMs: this.config.AGENTMETER_MIN_CYCLE_INTERVAL_MS,
      });
      stage = created;
      this.stages.set(partition, stage);
    }
    return stage;
  }

  /**
   * A stage that cannot go on (a cycle refused for good or lost to another member), or a batch that
   * failed: the partition's memory and stage are dropped, and fetching starts again from the first offset
   * the stores do not hold. A refusal sends the partition through the synchronous path past the failed
   * cycle, where the record behind it is found and dead-lettered.
   */
  private recover(partition: number, error: unknown): void {
    const stage = this.stages.get(partition);
    this.workers.get(partition)?.reset();
    this.workers.delete(partition);
    this.usageEvents.forget(this.config.AGENTMETER_INPUT_TOPIC, partition);
    if (stage === undefined) return;
    this.usageEvents.forget(stage.source, partition);
    const resumeFrom = stage.resumeFrom;
    const failedUpTo = stage.failedUpTo;
    this.dropStage(partition, stage);
    if (isDeterministicStoreError(error) && failedUpTo !== undefined)
      this.syncUntil.set(partition, BigInt(failedUpTo));
    if (resumeFrom === undefined || this.stopping) return;
    this.logger.warn(
      { err: error, partition, from: resumeFrom },
      "writes behind the decisions failed: fetching again from the first offset not in the stores",
    );
    try {
      this.consumer.seek({ topic: this.config.AGENTMETER_INPUT_TOPIC, partition, offset: resumeFrom });
    } catch (seekError) {
      // The partition is no longer ours: its new owner starts from the committed offset anyway.
      this.logger.debug({ err: seekError, partition }, "seek after a dropped stage refused");
    }
  }

  private reportPending(partition: number, stage: WriteBehind): void {
    const { records, oldestMs } = stage.pending;
    this.metrics.pending(partition, records, oldestMs / 1000);
  }

  private dropStage(partition: number, stage: WriteBehind): void {
    if (this.stages.get(partition) === stage) this.stages.delete(partition);
    const previous = this.settling.get(partition) ?? Promise.resolve();
    this.settling.set(
      partition,
      previous.then(() => stage.abandon()),
    );
  }

  private pendingRecords(): number {
    let total = 0;
    for (const stage of this.stages.values()) total += stage.pending.records;
    return total;
  }

  /**
   * Write mode `behind`: plan, hand the plan to the partition's stage (which publishes the decisions,
   * then writes the stores) and move on. The partition fetches again at once unless the stage holds
   * more than the bound, in which case this batch waits (heartbeating) for a cycle to drain it.
   */
  private async runBehind(
    worker: PartitionWorker,
    stage: WriteBehind,
    messages: readonly InputMessage[],
    ctx: BatchContext,
  ): Promise<void> {
    let plan: FlushPlan;
    try {
      plan = await this.withRetry(async () => {
        // Loads after a reset must see what the stage still holds: it lands first.
        if (worker.cold && !stage.idle) await stage.drain();
        return worker.plan(messages);
      }, ctx.stillOurs);
    } catch (error) {
      if (!isDeterministicStoreError(error)) throw error;
      // A record this batch cannot take: what came before it lands, then the synchronous path finds it.
      await stage.drain();
      await this.run(worker, messages, ctx);
      return;
    }
    ctx.lease.check();
    // Stale since it was fetched (a seek or a rebalance meanwhile): its plan must not be queued. Memory
    // is ahead of what will be fetched again, so the worker is dropped too.
    if (!ctx.stillOurs()) {
      worker.reset();
      throw new AgentmeterError(
        "OWNERSHIP_LOST",
        `partition ${ctx.partition}: batch went stale while planned`,
      );
    }
    // The decisions publish behind the batch, in order, while kafkajs fetches the next one: it fetches
    // again only when every batch of a fetch has returned, so a batch that waited for the brokers would
    // hold back the decisions of every partition. The stage writes nothing before they are published.
    stage.enqueue(plan).then(
      () => this.observeAge("published", messages),
      () => undefined, // the stage fails with it, and recover() fetches the partition again
    );
    this.reportPending(ctx.partition, stage);
    ctx.resolveOffset((BigInt(plan.commitOffset) - 1n).toString());
    if (!stage.over(this.bounds)) return;
    if (!this.heldBack.has(ctx.partition)) {
      this.heldBack.add(ctx.partition);
      this.logger.warn(
        { partition: ctx.partition, pending: stage.pending, bounds: this.bounds },
        "stores behind by more than the bound: partition holds its fetching until they catch up",
      );
    }
    // A stop ends the wait: the batch's records are not committed, and stop() drains what it can.
    while (stage.over(this.bounds) && !this.stopping) {
      ctx.lease.check();
      await Promise.race([stage.nextCycle(), sleep(1_000)]);
    }
    this.heldBack.delete(ctx.partition);
    if (this.stopping) return;
    this.logger.info(
      { partition: ctx.partition, pending: stage.pending },
      "stores caught up: fetching again",
    );
  }

  /**
   * Write mode `sync` (and the fallback): plans, flushes and commits some messages of a batch. A store
   * that refuses their effect for good (see store-errors.ts) would stop the partition on every retry: the
   * messages are split in halves until the record that causes it stands alone, and that record is
   * dead-lettered, so the partition keeps moving.
   */
  private async run(
    worker: PartitionWorker,
    messages: readonly InputMessage[],
    ctx: BatchContext,
  ): Promise<void> {
    let plan: FlushPlan;
    try {
      plan = await this.withRetry(() => worker.plan(messages), ctx.stillOurs);
      ctx.lease.check();
      await this.flushPlan(plan, ctx);
      this.observeAge("published", messages);
    } catch (error) {
      if (!isDeterministicStoreError(error)) throw error;
      worker.reset();
      this.usageEvents.forget(ctx.topic, ctx.partition);
      if (messages.length > 1) {
        const half = Math.ceil(messages.length / 2);
        await this.run(worker, messages.slice(0, half), ctx);
        await this.run(worker, messages.slice(half), ctx);
        return;
      }
      const message = messages[0]!;
      const reason = error instanceof Error ? error.message : String(error);
      if (isAgentmeterError(error, "RECORD_APPLY_FAILED")) {
        await this.parkApplyFailure(worker, messages, ctx, error);
        return;
      }
      this.logger.error(
        { partition: ctx.partition, offset: message.offset, reason },
        "a store refused a record's effect for good: dead-lettered as RECORD_STORE_REJECTED",
      );
      this.totals.storeRejected += 1;
      await this.flushPlan(worker.rejection(message, "RECORD_STORE_REJECTED", reason), ctx);
      return;
    }
    worker.durable(plan);
  }

  /**
   * The one record the billing core fails on (RECORD_APPLY_FAILED): dead-lettered, unless an earlier
   * owner's flush of it landed in part (its rows, maybe its app's ledger) before that owner died. Parked
   * and then re-driven, such a record would be billed there twice, so it is tried again until a fix.
   */
  private async parkApplyFailure(
    worker: PartitionWorker,
    messages: readonly InputMessage[],
    ctx: BatchContext,
    error: AgentmeterError,
  ): Promise<void> {
    const message = messages[0]!;
    if (await this.storedInPart(worker.source, message, ctx)) {
      this.logger.error(
        { partition: ctx.partition, offset: message.offset, err: error.cause },
        "the billing core failed on a record some stores already hold in part: not dead-lettered, retried until a fix",
      );
      // Counted as the over-budget apply failures are (store "other"), so AgentmeterStoreFailing fires.
      this.metrics.storeError("other");
      this.metrics.storeRetry("other");
      await sleep(APPLY_FAILURE_RETRY_MS);
      if (!ctx.stillOurs() || this.stopping)
        throw new AgentmeterError("OWNERSHIP_LOST", `partition ${ctx.partition}: lost while retrying`);
      await this.run(worker, messages, ctx);
      return;
    }
    // The stack is the fix's starting point; the dead letter keeps the record for a re-drive after it.
    this.logger.error(
      { partition: ctx.partition, offset: message.offset, err: error.cause },
      "the billing core failed on a valid record (a bug): dead-lettered as RECORD_APPLY_FAILED, re-drive it after the fix",
    );
    this.applyFailures.spend();
    this.totals.applyFailed += 1;
    await this.flushPlan(worker.rejection(message, "RECORD_APPLY_FAILED", error.message), ctx);
  }

  /** Whether a usage or adjustment row at or past the message's offset is stored (flush.ts, step 1). */
  private async storedInPart(source: string, message: InputMessage, ctx: BatchContext): Promise<boolean> {
    const through = await this.withRetry(
      () => this.usageEvents.storedThrough(source, ctx.partition),
      ctx.stillOurs,
    );
    return through >= BigInt(message.offset);
  }

  private async flushPlan(plan: FlushPlan, ctx: BatchContext): Promise<void> {
    let timings: FlushTimings | undefined;
    const started = performance.now();
    await this.withRetry(async () => {
      timings = await flush(plan, this.targets, () => ctx.lease.check());
    }, ctx.stillOurs);
    this.metrics.cycleWritten(cycleFigures(plan, (performance.now() - started) / 1000));
    // Built only when asked for: the per-collection counts walk every projection of the flush.
    if (this.logger.isLevelEnabled("debug")) {
      this.logger.debug(
        {
          partition: ctx.partition,
          records: plan.stats.consumed,
          accountDocs: plan.accountWrites.length,
          projectionDocs: plan.projections.length,
          projectionsBy: countBy(plan.projections.map((p) => targetKey(p.target))),
          planMs: Object.values(plan.timings).reduce((total, ms) => total + ms, 0),
          planParts: plan.timings,
          ms: timings,
        },
        "flushed",
      );
    }
    // Counted before the commit: if the commit fails, the stores already hold the records, and whoever
    // fetches them again counts them as replays.
    this.count(plan);
    this.metrics.planDurable(plan);
    const lastOffset = (BigInt(plan.commitOffset) - 1n).toString();
    ctx.resolveOffset(lastOffset);
    await ctx.commit(plan.commitOffset);
  }

  /** How old the batch's first (oldest) record is at this stage, by its log timestamp. */
  private observeAge(stage: "fetched" | "published", messages: readonly InputMessage[]): void {
    const stamp = Number(messages[0]?.timestamp);
    if (Number.isFinite(stamp) && stamp > 0) this.metrics.decisionAge(stage, (Date.now() - stamp) / 1000);
  }

  private withRetry<T>(
    action: () => Promise<T>,
    stillOurs: () => boolean,
    /** A write-behind cycle keeps trying while stopping: stop() waits for it (for a while). */
    evenWhileStopping = false,
  ): Promise<T> {
    return retryStores(
      action,
      { stillOurs, stopping: () => this.stopping, evenWhileStopping },
      { metrics: this.metrics, logger: this.logger },
    );
  }

  private count(plan: FlushPlan): void {
    countDurable(this.totals, plan);
  }
}
