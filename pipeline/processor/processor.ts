import { setTimeout as sleep } from "node:timers/promises";
import type { Consumer, EachBatchPayload, Kafka, Producer } from "kafkajs";
import type { MongoClient } from "mongodb";
import { type ClickHouseClient, createClickHouse } from "../../sinks/clickhouse/client.ts";
import { applyMigrations } from "../../sinks/clickhouse/migrations.ts";
import { UsageEventsSink } from "../../sinks/clickhouse/usage-events.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { IndexRegistry } from "../../sinks/mongo/indexes.ts";
import { layoutNames, MongoLayout } from "../../sinks/mongo/layout.ts";
import { Limiter } from "../../sinks/mongo/limiter.ts";
import type { Config } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import { isAgentmeterError } from "../errors.ts";
import { createKafka, DEFAULT_PARTITIONER, ensureTopics } from "../kafka.ts";
import type { Logger } from "../log.ts";
import { BatchLease } from "./batch-lease.ts";
import { CostWatch } from "./cost-watch.ts";
import { type FlushTimings, flush } from "./flush.ts";
import { PartitionWorker } from "./partition-worker.ts";

/** MongoDB write statements in flight per process: two bulk commands (see sinks/mongo/limiter.ts). */
const MONGO_IN_FLIGHT = 32;

function countBy(names: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

export interface ProcessorTotals {
  consumed: number;
  applied: number;
  deadLettered: number;
  duplicates: number;
  replayedSkipped: number;
  flushes: number;
  accountWrites: number;
  ledgerWrites: number;
}

/**
 * The stream processor: a consumer-group member that turns each fetched partition batch into one flush.
 * Backpressure is structural: a batch is not finished (and the next not fetched) until its flush is
 * durable, and a failing sink is retried with backoff while the member keeps heartbeating.
 */
export class Processor {
  readonly totals: ProcessorTotals = {
    consumed: 0,
    applied: 0,
    deadLettered: 0,
    duplicates: 0,
    replayedSkipped: 0,
    flushes: 0,
    accountWrites: 0,
    ledgerWrites: 0,
  };
  private readonly kafka: Kafka;
  private readonly consumer: Consumer;
  private readonly producer: Producer;
  private readonly mongo: MongoClient;
  private readonly clickhouse: ClickHouseClient;
  private readonly usageEvents: UsageEventsSink;
  private readonly layout: MongoLayout;
  private readonly indexes: IndexRegistry;
  private readonly knownShared = new Set<string>();
  private readonly costWatch: CostWatch;
  private readonly mongoLimiter = new Limiter(MONGO_IN_FLIGHT);
  private readonly workers = new Map<number, PartitionWorker>();
  private stopping = false;
  private readonly heartbeatIntervalMs: number;

  constructor(
    private readonly config: Config,
    private readonly billing: BillingConfig,
    private readonly logger: Logger,
  ) {
    this.kafka = createKafka(config, logger);
    this.heartbeatIntervalMs = Math.floor(config.AGENTMETER_SESSION_TIMEOUT_MS / 10);
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
    this.producer = this.kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: DEFAULT_PARTITIONER,
    });
    this.mongo = createMongo(config.MONGODB_URI);
    this.clickhouse = createClickHouse({
      url: config.CLICKHOUSE_URL,
      username: config.CLICKHOUSE_USER,
      password: config.CLICKHOUSE_PASSWORD,
    });
    this.usageEvents = new UsageEventsSink(this.clickhouse, config.CLICKHOUSE_DATABASE);
    this.layout = new MongoLayout(this.mongo, layoutNames(config));
    this.indexes = new IndexRegistry(this.layout);
    this.costWatch = new CostWatch(
      this.clickhouse,
      config.CLICKHOUSE_DATABASE,
      { multiple: config.AGENTMETER_COST_MULTIPLE, refreshMs: config.AGENTMETER_COST_AVERAGES_REFRESH_MS },
      logger,
    );
  }

  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      await ensureTopics(admin, this.config);
    } finally {
      await admin.disconnect();
    }
    const migrated = await applyMigrations(this.clickhouse, this.config.CLICKHOUSE_DATABASE);
    if (migrated.length > 0) this.logger.info({ versions: migrated }, "clickhouse migrations applied");
    await this.mongo.connect();
    await this.indexes.shared();
    await this.producer.connect();
    await this.consumer.connect();
    // Whatever was cached may have been written by another member since: every (re)join starts cold.
    this.consumer.on(this.consumer.events.GROUP_JOIN, (event) => {
      this.workers.clear();
      this.usageEvents.forgetAll();
      this.logger.info({ assignment: event.payload.memberAssignment }, "joined group");
    });
    await this.consumer.subscribe({ topic: this.config.AGENTMETER_INPUT_TOPIC, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: this.config.AGENTMETER_CONCURRENCY,
      eachBatch: (payload) => this.onBatch(payload),
    });
    this.logger.info(
      { topic: this.config.AGENTMETER_INPUT_TOPIC, group: this.config.AGENTMETER_GROUP_ID },
      "processor started",
    );
  }

  /** Finishes the batch in hand (flush and commit), then leaves the group and closes every client. */
  async stop(): Promise<void> {
    this.stopping = true;
    await this.consumer.disconnect();
    this.costWatch.close();
    await this.producer.disconnect();
    await this.mongo.close();
    await this.clickhouse.close();
    this.logger.info({ totals: this.totals }, "processor stopped");
  }

  private worker(topic: string, partition: number): PartitionWorker {
    let worker = this.workers.get(partition);
    if (worker === undefined) {
      worker = new PartitionWorker(topic, partition, {
        layout: this.layout,
        indexes: this.indexes,
        knownShared: this.knownShared,
        costWatch: this.costWatch,
        billing: this.billing,
        maxRecordBytes: this.config.AGENTMETER_MAX_RECORD_BYTES,
        now: () => new Date(),
      });
      this.workers.set(partition, worker);
    }
    return worker;
  }

  private async onBatch({
    batch,
    heartbeat,
    resolveOffset,
    commitOffsetsIfNecessary,
    isRunning,
    isStale,
  }: EachBatchPayload): Promise<void> {
    if (batch.messages.length === 0) return;
    const worker = this.worker(batch.topic, batch.partition);
    const lease = new BatchLease(heartbeat, this.heartbeatIntervalMs);
    try {
      const plan = await worker.plan(batch.messages);
      lease.check();
      let timings: FlushTimings | undefined;
      await this.withRetry(
        async () => {
          timings = await flush(plan, this.flushTargets(), () => lease.check());
        },
        () => isRunning() && !isStale() && !lease.lost,
      );
      // Built only when asked for: the per-collection counts walk every projection of the flush.
      if (this.logger.isLevelEnabled("debug")) {
        this.logger.debug(
          {
            partition: batch.partition,
            records: batch.messages.length,
            accountDocs: plan.accountWrites.length,
            projectionDocs: plan.projections.length,
            projectionsBy: countBy(plan.projections.map((p) => p.collection.collectionName)),
            planMs: Object.values(plan.timings).reduce((total, ms) => total + ms, 0),
            planParts: plan.timings,
            ms: timings,
          },
          "flushed",
        );
      }
      worker.committed(plan);
      resolveOffset(batch.messages[batch.messages.length - 1]!.offset);
      await commitOffsetsIfNecessary({
        topics: [
          { topic: batch.topic, partitions: [{ partition: batch.partition, offset: plan.commitOffset }] },
        ],
      });
      this.count(plan.stats, plan.deadLetters.length, plan.accountWrites.length, plan.ledgerWrites.length);
    } catch (error) {
      // Memory may be ahead of the stores: forget it, so the re-delivered batch starts from what is durable.
      worker.reset();
      this.workers.delete(batch.partition);
      this.usageEvents.forget(batch.topic, batch.partition);
      if (isAgentmeterError(error, "OWNERSHIP_LOST")) {
        // Nothing was committed; kafkajs re-fetches from the last resolved offset or the partition moves.
        this.logger.warn(
          { err: error, partition: batch.partition },
          "batch abandoned: partition may have moved",
        );
        return;
      }
      throw error;
    } finally {
      lease.release();
    }
  }

  private flushTargets() {
    return {
      producer: this.producer,
      usageEvents: this.usageEvents,
      mongoLimiter: this.mongoLimiter,
      topics: {
        deadLetter: this.config.AGENTMETER_DLQ_TOPIC,
        events: this.config.AGENTMETER_EVENTS_TOPIC,
        state: this.config.AGENTMETER_STATE_TOPIC,
      },
    };
  }

  /** Retries a failing sink with capped backoff for as long as the batch is still ours (the lease heartbeats meanwhile). */
  private async withRetry(action: () => Promise<void>, stillOurs: () => boolean): Promise<void> {
    let delay = 100;
    for (let attempt = 1; ; attempt++) {
      try {
        await action();
        return;
      } catch (error) {
        if (isAgentmeterError(error, "OWNERSHIP_LOST") || this.stopping || !stillOurs()) throw error;
        this.logger.warn(
          { err: error, attempt, retryInMs: delay },
          "flush failed; retrying (consumption paused)",
        );
        await sleep(delay);
        delay = Math.min(delay * 2, 5_000);
      }
    }
  }

  private count(
    stats: { consumed: number; applied: number; replayedSkipped: number; duplicates: number },
    deadLettered: number,
    accountWrites: number,
    ledgerWrites: number,
  ): void {
    this.totals.consumed += stats.consumed;
    this.totals.applied += stats.applied;
    this.totals.replayedSkipped += stats.replayedSkipped;
    this.totals.duplicates += stats.duplicates;
    this.totals.deadLettered += deadLettered;
    this.totals.flushes += 1;
    this.totals.accountWrites += accountWrites;
    this.totals.ledgerWrites += ledgerWrites;
  }
}
