import { AgentmeterError } from "../../schemas/errors.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { readTopicRecord } from "../../sinks/mongo/topic-registry.ts";
import { redactText, redactUrl } from "../auth/redact.ts";
import { creditAuthorization } from "../auth/signature.ts";
import type { Config } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import { createKafka } from "../kafka.ts";
import type { Logger } from "../log.ts";
import { clickHouseFor, mongoLayoutFor } from "../runtime/clients.ts";
import { reach } from "../runtime/reach.ts";
import { type ActualStores, type Difference, diffStores, rowEvidence, type Store } from "./diff.ts";
import { RecomputeFeed } from "./feed.ts";
import { USAGE_FIELDS, type UsageField } from "./figures.ts";
import {
  addPublished,
  diffHoldDecisions,
  emptyPublished,
  type HoldDecisionCheck,
  recordsReadOf,
} from "./hold-decisions.ts";
import { auditNamespaceOf } from "./namespace.ts";
import { ofIncarnation, type RangeRequest, resolveRange, sourceOf, type TopicRange } from "./range.ts";
import {
  type ClickHouseSource,
  type RowScope,
  type RowTable,
  readAdjustmentTotals,
  readNewestIncarnation,
  readRecordIds,
  readUsageTotals,
} from "./read-clickhouse.ts";
import { readMongo } from "./read-mongo.ts";
import { type AppLevelGroup, type Expected, usageGroupKey } from "./recompute.ts";
import { type AuditReport, buildAuditReport } from "./report.ts";
import { type ReadProgress, readTopic, readTopicBatches } from "./topic-reader.ts";
import type { RecomputeSetup } from "./units.ts";
import { recomputeWorkerUrl } from "./worker-code.ts";
import { auditWorkers } from "./workers.ts";

export interface AuditOptions {
  /** The namespace audited (live, or a replay's via suffixedConfig); the input topic is read from it. */
  config: Config;
  billing: BillingConfig;
  range: RangeRequest;
  /** For kafkajs' own logs only. */
  logger: Logger;
  onProgress?: (progress: ReadProgress) => void;
  /**
   * Worker threads that recompute, the partitions shared out among them; 0 recomputes in the main
   * thread. The report is the same for any number. Default: AGENTMETER_AUDIT_WORKERS, else one per core.
   */
  workers?: number;
}

/** What a delta audit can check: figures of a record that do not depend on the account's history. */
const DELTA_USAGE_FIELDS: readonly UsageField[] = ["records", "tokens", "cost_micros"];

/**
 * Reads the topic, recomputes with the billing core and diffs against MongoDB and ClickHouse. Reads only:
 * no store is written (the Kafka group it reads with is its own, never committed, deleted after).
 */
export async function runAudit(options: AuditOptions): Promise<AuditReport> {
  const { config, billing } = options;
  // A bad AGENTMETER_AUDIT_WORKERS fails here, before any connection.
  const workers = options.workers ?? auditWorkers(undefined);
  // The workers' code is bundled while Kafka answers (memoized; the pool awaits it). Its failure is the
  // pool's to report.
  if (workers > 0) recomputeWorkerUrl().catch(() => {});
  const kafka = createKafka(config, options.logger);
  const brokers = config.KAFKA_BROKERS.join(",");
  const offsets = await reach("Kafka", brokers, async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      return await resolveRange(admin, config.AGENTMETER_INPUT_TOPIC, options.range);
    } finally {
      await admin.disconnect();
    }
  });
  // Minutes of reading the topic are not spent before learning that a store it needs does not answer.
  await clickHouseAnswers(config);
  const placement = await topicPlacement(config, offsets.partitions.length, options.logger);
  // The stores keep this incarnation's rows under its own name; a re-created topic is never complete.
  const range = ofIncarnation(offsets, placement.incarnation);
  if (range.complete && placement.mongoError !== undefined)
    throw new AgentmeterError(
      "SERVICE_UNAVAILABLE",
      `MongoDB at ${redactUrl(config.MONGODB_URI)} does not answer: ${placement.mongoError}`,
    );
  const setup: RecomputeSetup = {
    billing,
    maxRecordBytes: config.AGENTMETER_MAX_RECORD_BYTES,
    partitionCounts: placement.partitionCounts,
    creditPolicy: creditAuthorization(config),
    partitions: range.partitions.filter(({ from, to }) => BigInt(from) < BigInt(to)).map((p) => p.partition),
  };
  const expected = await reach("Kafka", brokers, () =>
    recompute(kafka, range, setup, workers, options.onProgress ?? (() => {})),
  );
  const actual = await readStores(config, expected, range);
  const differences = diffStores(expected, actual, range.complete ? USAGE_FIELDS : DELTA_USAGE_FIELDS);
  await explainMissingRows(config, differences, expected, range);
  // A decision depends on the account's whole history: only a complete audit can recompute it.
  const holds = range.complete
    ? await reach("Kafka", brokers, () => checkHoldDecisions(kafka, config.AGENTMETER_HOLDS_TOPIC, expected))
    : undefined;
  if (holds !== undefined) differences.push(...holds.differences);
  const checked: Partial<Record<Store, number>> = {};
  if (holds !== undefined) checked["kafka.hold_decisions"] = holds.checked;
  if (actual.mongo !== undefined) {
    checked["mongodb.accounts"] = new Set([
      ...Object.keys(expected.state.accounts),
      ...actual.mongo.accounts.keys(),
    ]).size;
    checked["mongodb.revenue"] = new Set([...expected.revenue.keys(), ...actual.mongo.revenue.keys()]).size;
  }
  for (const [source, totals] of Object.entries(actual.clickhouse)) {
    checked[`clickhouse.${source}` as Store] = new Set([...expected.usage.keys(), ...totals.keys()]).size;
  }
  if (actual.adjustments !== undefined) {
    checked["clickhouse.adjustments"] = new Set([
      ...expected.adjustments.keys(),
      ...actual.adjustments.keys(),
    ]).size;
  }
  return buildAuditReport({
    range,
    namespace: auditNamespaceOf(config),
    billing,
    counts: expected.counts,
    checked,
    differences,
    ...(holds === undefined
      ? {}
      : {
          holds: {
            topic: config.AGENTMETER_HOLDS_TOPIC,
            unverifiable: holds.unverifiable,
            outside_range: holds.outside_range,
            undecodable: holds.undecodable,
          },
        }),
  });
}

/**
 * Reads the whole reply topic and sets what it holds against the decisions the core made. The topic is
 * keyed by hold_id, not by account, and kept for a day (pipeline/kafka.ts): what retention removed is
 * counted unverifiable, not different. A decision for a record the recompute read (its trails) that the
 * core made no decision for is a difference; one for a record it did not read, outside the range.
 */
async function checkHoldDecisions(
  kafka: ReturnType<typeof createKafka>,
  topic: string,
  expected: Expected,
): Promise<HoldDecisionCheck & { undecodable: number }> {
  const admin = kafka.admin();
  await admin.connect();
  let holdsRange: TopicRange | undefined;
  try {
    // No topic: no processor ever published a decision (the processor creates it on start).
    if ((await admin.listTopics()).includes(topic))
      holdsRange = await resolveRange(admin, topic, { kind: "all" });
  } finally {
    await admin.disconnect();
  }
  const published = emptyPublished(holdsRange?.complete ?? true);
  if (holdsRange !== undefined)
    await readTopic(
      kafka,
      holdsRange,
      (_partition, message) => addPublished(published, message.value),
      () => {},
    );
  return {
    ...diffHoldDecisions(expected.holds, published, recordsReadOf(expected.trails)),
    undecodable: published.undecodable,
  };
}

/**
 * Reads the range and recomputes it: in the main thread (workers 0), or in worker threads that each
 * run the recompute units (partitions) they were given, the main thread reading and handing each
 * partition's batches to its thread (through the log-order merge when one unit takes every partition:
 * feed.ts). Either way the units' figures are merged in partition order.
 */
async function recompute(
  kafka: ReturnType<typeof createKafka>,
  range: TopicRange,
  setup: RecomputeSetup,
  workers: number,
  onProgress: (progress: ReadProgress) => void,
): Promise<Expected> {
  const total = range.partitions.reduce((sum, p) => sum + Number(BigInt(p.to) - BigInt(p.from)), 0);
  const records = new Map(range.partitions.map((p) => [p.partition, Number(BigInt(p.to) - BigInt(p.from))]));
  let count = 0;
  const feed = await RecomputeFeed.create(setup, workers, records, {
    onApplied: (applied) => {
      count = applied;
      onProgress({ read: applied, total });
    },
  });
  try {
    await readTopicBatches(
      kafka,
      range,
      (partition, messages, ended, control) => feed.batch(partition, messages, ended, control),
      (progress) => {
        // In worker threads the progress is what they applied (onApplied), not what was read.
        if (feed.threads > 0) return;
        count = progress.read;
        onProgress(progress);
      },
    );
    const expected = await feed.finish();
    onProgress({ read: count, total, done: true });
    return expected;
  } finally {
    await feed.close();
  }
}

/** What the processor registered for the input topic (AgentmeterTopics), as the audit uses it. */
interface Placement {
  /** The partition counts records are admitted under; see topicPlacement. */
  partitionCounts: number[];
  /** The topic's incarnation: its rows are stored under sourceName(topic, incarnation). */
  incarnation: number;
  /** Why MongoDB could not be read, if it could not: a complete audit needs it, a delta audit does not. */
  mongoError?: string;
}

/**
 * The partition counts the processor admits records under (the topic's current count and every count
 * the processor registered for it) and the topic's incarnation, from AgentmeterTopics. No record: no
 * processor has run on the topic, incarnation 0. Without MongoDB, the current count alone (a topic whose
 * partitions were added then flags records placed under the old count as skipped) and the newest
 * incarnation ClickHouse holds rows of.
 */
async function topicPlacement(config: Config, current: number, logger: Logger): Promise<Placement> {
  const topic = config.AGENTMETER_INPUT_TOPIC;
  const mongo = createMongo(config.MONGODB_URI);
  try {
    await mongo.connect();
    const layout = mongoLayoutFor(mongo, config);
    const record = await readTopicRecord(layout, topic);
    const counts = record?.partition_counts ?? [];
    return {
      partitionCounts: counts.includes(current) ? counts : [...counts, current],
      incarnation: record?.incarnation ?? 0,
    };
  } catch (error) {
    const incarnation = await newestStoredIncarnation(config).catch(() => 0);
    logger.warn(
      { err: redactText((error as Error).message), incarnation },
      "MongoDB unreachable: checking partitions against the topic's current count only, and auditing the newest incarnation of the topic ClickHouse holds rows of",
    );
    return { partitionCounts: [current], incarnation, mongoError: redactText((error as Error).message) };
  } finally {
    await mongo.close().catch(() => {});
  }
}

async function newestStoredIncarnation(config: Config): Promise<number> {
  const clickhouse = clickHouseFor(config);
  try {
    return await readNewestIncarnation(clickhouse, config.CLICKHOUSE_DATABASE, config.AGENTMETER_INPUT_TOPIC);
  } finally {
    await clickhouse.close();
  }
}

/**
 * The rows a comparison reads: those stored under the audited incarnation's name, all of its offsets on
 * a complete audit (the rollups have no offsets: complete audits only), the range's on a delta audit.
 */
function rowScope(range: TopicRange): RowScope {
  return range.complete ? { source: sourceOf(range) } : { source: sourceOf(range), offsets: range };
}

/** Throws SERVICE_UNAVAILABLE when ClickHouse, which every audit reads, does not answer a ping. */
async function clickHouseAnswers(config: Config): Promise<void> {
  const clickhouse = clickHouseFor(config);
  try {
    // A query, not ping(): the client logs a failed ping itself, a second line beside the command's one.
    await reach("ClickHouse", redactUrl(config.CLICKHOUSE_URL), () =>
      clickhouse.command({ query: "SELECT 1" }),
    );
  } finally {
    await clickhouse.close();
  }
}

async function readStores(config: Config, expected: Expected, range: TopicRange): Promise<ActualStores> {
  const clickhouse = clickHouseFor(config);
  const actual: ActualStores = { clickhouse: {} };
  try {
    await reach("ClickHouse", redactUrl(config.CLICKHOUSE_URL), async () => {
      const exists = await clickhouse.query({
        query:
          "SELECT count() AS n FROM system.tables WHERE database = {db:String} AND name = 'usage_events'",
        query_params: { db: config.CLICKHOUSE_DATABASE },
        format: "JSONEachRow",
      });
      const [row] = await exists.json<{ n: string }>();
      if (Number(row?.n ?? 0) === 0) {
        throw new AgentmeterError(
          "CONFIG_INVALID",
          `ClickHouse database ${config.CLICKHOUSE_DATABASE} has no usage_events table (CLICKHOUSE_DATABASE, or --suffix of a replay that never ran)`,
        );
      }
      const sources: ClickHouseSource[] = range.complete
        ? ["usage_events", "usage_by_hour", "usage_by_minute"]
        : ["usage_events"];
      for (const source of sources) {
        actual.clickhouse[source] = await readUsageTotals(
          clickhouse,
          config.CLICKHOUSE_DATABASE,
          source,
          rowScope(range),
        );
      }
      if (range.complete)
        actual.adjustments = await readAdjustmentTotals(
          clickhouse,
          config.CLICKHOUSE_DATABASE,
          rowScope(range),
        );
    });
  } finally {
    await clickhouse.close();
  }
  // Balances, ledgers and billed amounts depend on every record before the range (or before the topic
  // was created again): not comparable.
  if (!range.complete) return actual;
  const mongo = createMongo(config.MONGODB_URI);
  try {
    actual.mongo = await reach("MongoDB", redactUrl(config.MONGODB_URI), async () => {
      await mongo.connect();
      const layout = mongoLayoutFor(mongo, config);
      const apps = new Set<string>();
      for (const account of Object.values(expected.state.accounts))
        if (account.enterprise_id !== null) apps.add(account.enterprise_id);
      // Only the ledgers of the audited source; watermarks of another source say nothing of this log.
      return readMongo(mongo, layout, apps, sourceOf(range));
    });
  } finally {
    await mongo.close();
  }
  return actual;
}

type AppLevelGroups = ReadonlyMap<string, AppLevelGroup<string>>;

/** The tables whose differences are explained row by row, and the core's record ids for each. */
const ROW_TABLES: Partial<
  Record<Store, { table: RowTable; groups: (expected: Expected) => AppLevelGroups }>
> = {
  "clickhouse.usage_events": { table: "usage_events", groups: (expected) => expected.usage },
  "clickhouse.adjustments": { table: "adjustments", groups: (expected) => expected.adjustments },
};

/**
 * Totals say how much is wrong; the rows say which. For every app and level whose raw events or
 * adjustments differ, the stored records (account and record_id) are read and set against the
 * recomputed ones: the records with no row, and the rows with no record, become the evidence of that
 * difference (rowEvidence).
 */
async function explainMissingRows(
  config: Config,
  differences: Difference[],
  expected: Expected,
  range: TopicRange,
): Promise<void> {
  const groups = new Map<string, Difference[]>();
  for (const difference of differences) {
    if (ROW_TABLES[difference.store] === undefined) continue;
    const groupKey = `${difference.store} ${difference.subject}`;
    const list = groups.get(groupKey) ?? [];
    list.push(difference);
    groups.set(groupKey, list);
  }
  if (groups.size === 0) return;
  const clickhouse = clickHouseFor(config);
  try {
    for (const list of groups.values()) {
      const { store, enterprise_id: enterpriseId, level } = list[0]!;
      const { table, groups: groupsOf } = ROW_TABLES[store]!;
      const stored = await reach("ClickHouse", redactUrl(config.CLICKHOUSE_URL), () =>
        readRecordIds(
          clickhouse,
          config.CLICKHOUSE_DATABASE,
          table,
          enterpriseId ?? "",
          level ?? "",
          rowScope(range),
        ),
      );
      const want = groupsOf(expected).get(usageGroupKey(enterpriseId ?? "", level ?? ""));
      const found = rowEvidence(table, want, stored);
      if (found === undefined) continue;
      for (const difference of list) {
        difference.explained_by = found.explained_by;
        difference.record_ids = [...found.record_ids];
        difference.record_ids_total = found.record_ids_total;
        // Last in the difference, as diffStores puts them.
        delete difference.record_account_keys;
        if (found.record_account_keys !== undefined)
          difference.record_account_keys = [...found.record_account_keys];
      }
    }
  } finally {
    await clickhouse.close();
  }
}
