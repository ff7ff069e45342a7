import { setTimeout as sleep } from "node:timers/promises";
import type { Admin } from "kafkajs";
import { createMongo } from "../../sinks/mongo/client.ts";
import { redactUrl } from "../auth/redact.ts";
import type { Config } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import { AgentmeterError } from "../errors.ts";
import { createKafka } from "../kafka.ts";
import type { Logger } from "../log.ts";
import { Processor } from "../processor/processor.ts";
import type { ProcessorTotals } from "../processor/totals.ts";
import { clickHouseFor } from "../runtime/clients.ts";
import { reach } from "../runtime/reach.ts";
import { suffixedConfig } from "./namespace.ts";
import { type NamespaceContents, outputTopics, refusalOfReads, type TopicOffsets } from "./replay-refusal.ts";

export interface ReplayProgress {
  done: number;
  total: number;
}

export interface ReplayResult {
  namespace: Config;
  ends: { partition: number; offset: string }[];
  totals: ProcessorTotals;
}

/**
 * A replay writes into databases named by its suffix, and app databases by the suffix alone (to stay
 * under 63 bytes): another replay with that suffix, of this namespace or another on the same server,
 * may have written them. Replaying on top would prove nothing, so a namespace any store of which holds
 * an earlier replay's output is refused (replay-refusal.ts decides from what the checks below read).
 * Every store is read (at once), so the refusal names all that was found; a store that does not answer
 * is reported as such (SERVICE_UNAVAILABLE, by reach), never as a used namespace (refusalOfReads). Each
 * check closes its own client before the decision: a refusal leaves nothing connected.
 */
async function refuseUsedNamespace(namespace: Config, suffix: string, logger: Logger): Promise<void> {
  const [mongo, clickhouse, kafka] = await Promise.allSettled([
    mongoDatabases(namespace),
    clickhouseTables(namespace, logger),
    kafkaOffsets(namespace, logger),
  ]);
  const refusal = refusalOfReads(namespace, suffix, { mongo, clickhouse, kafka });
  if (refusal !== undefined) throw new AgentmeterError("CLI_USAGE", refusal);
}

/** The names of every database on the MongoDB server. */
async function mongoDatabases(namespace: Config): Promise<string[]> {
  const mongo = createMongo(namespace.MONGODB_URI);
  try {
    const { databases } = await reach("MongoDB", redactUrl(namespace.MONGODB_URI), () =>
      mongo.db("admin").admin().listDatabases({ nameOnly: true }),
    );
    return databases.map((db) => db.name);
  } finally {
    await mongo.close();
  }
}

/** The tables of the namespace's ClickHouse database and their row counts (none: no such database). */
async function clickhouseTables(
  namespace: Config,
  logger: Logger,
): Promise<NamespaceContents["clickhouseTables"]> {
  const client = clickHouseFor(namespace, logger);
  try {
    return await reach("ClickHouse", redactUrl(namespace.CLICKHOUSE_URL), async () => {
      const result = await client.query({
        query: "SELECT name, total_rows FROM system.tables WHERE database = {db:String} ORDER BY name",
        query_params: { db: namespace.CLICKHOUSE_DATABASE },
        format: "JSONEachRow",
      });
      return await result.json<{ name: string; total_rows: string | number | null }>();
    });
  } finally {
    await client.close();
  }
}

/**
 * The consumer group's committed offsets and the output topics' watermarks, read through one admin.
 * Topics are listed first and only an existing one is asked about: asking a broker that auto-creates
 * topics about a missing one would create it (a write before the refusal).
 */
async function kafkaOffsets(
  namespace: Config,
  logger: Logger,
): Promise<Pick<NamespaceContents, "groupOffsets" | "replyOffsets" | "outputOffsets">> {
  const brokers = namespace.KAFKA_BROKERS.join(",");
  const admin = createKafka(namespace, logger).admin();
  await reach("Kafka", brokers, () => admin.connect());
  try {
    const topics = new Set(await reach("Kafka", brokers, () => admin.listTopics()));
    return {
      groupOffsets: await groupOffsets(admin, namespace, topics),
      replyOffsets: await topicOffsets(admin, namespace, topics, namespace.AGENTMETER_HOLDS_TOPIC),
      outputOffsets: Object.fromEntries(
        await Promise.all(
          outputTopics(namespace).map(async (topic) => [
            topic,
            await topicOffsets(admin, namespace, topics, topic),
          ]),
        ),
      ),
    };
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** The group's offsets on the input topic (-1 where none is committed); none without the topic. */
async function groupOffsets(
  admin: Admin,
  namespace: Config,
  topics: ReadonlySet<string>,
): Promise<NamespaceContents["groupOffsets"]> {
  const topic = namespace.AGENTMETER_INPUT_TOPIC;
  if (!topics.has(topic)) return [];
  const [committed] = await reach("Kafka", namespace.KAFKA_BROKERS.join(","), () =>
    admin.fetchOffsets({ groupId: namespace.AGENTMETER_GROUP_ID, topics: [topic] }),
  );
  return committed?.partitions ?? [];
}

/** An output topic's low and high watermarks per partition; none without the topic. */
async function topicOffsets(
  admin: Admin,
  namespace: Config,
  topics: ReadonlySet<string>,
  topic: string,
): Promise<TopicOffsets[]> {
  if (!topics.has(topic)) return [];
  return await reach("Kafka", namespace.KAFKA_BROKERS.join(","), () => admin.fetchTopicOffsets(topic));
}

/**
 * Rebuilds a namespace from the topic with the live processor's own code: a Processor whose group,
 * databases and output topics carry the suffix consumes the topic from the beginning until its group has
 * committed every partition up to the end captured at start, then stops. Its commit is the last step of a
 * flush, so a committed end means every store of the namespace holds the records before it.
 */
export async function runReplay(options: {
  config: Config;
  suffix: string;
  billing: BillingConfig;
  logger: Logger;
  pollMs?: number;
  onProgress?: (progress: ReplayProgress) => void;
}): Promise<ReplayResult> {
  const namespace = suffixedConfig(options.config, options.suffix);
  const topic = namespace.AGENTMETER_INPUT_TOPIC;
  const brokers = namespace.KAFKA_BROKERS.join(",");
  // Before anything is written or the replay's own clients are opened.
  await refuseUsedNamespace(namespace, options.suffix, options.logger);
  const admin = createKafka(namespace, options.logger).admin();
  await reach("Kafka", brokers, () => admin.connect());
  const processor = new Processor(namespace, options.billing, options.logger);
  try {
    const offsets = await reach("Kafka", brokers, () => admin.fetchTopicOffsets(topic));
    const ends = offsets
      .map(({ partition, low, high }) => ({ partition, low: BigInt(low), high: BigInt(high) }))
      .sort((a, b) => a.partition - b.partition);
    const total = ends.reduce((sum, end) => sum + Number(end.high - end.low), 0);
    await reach("the stores", "the configured addresses", () => processor.start());
    for (;;) {
      const [committed] = await admin.fetchOffsets({
        groupId: namespace.AGENTMETER_GROUP_ID,
        topics: [topic],
      });
      const byPartition = new Map(
        (committed?.partitions ?? []).map((entry) => [entry.partition, BigInt(entry.offset)]),
      );
      let done = 0;
      let caughtUp = true;
      for (const end of ends) {
        const at = byPartition.get(end.partition) ?? -1n;
        const reached = at < end.low ? end.low : at > end.high ? end.high : at;
        done += Number(reached - end.low);
        if (end.high > end.low && at < end.high) caughtUp = false;
      }
      options.onProgress?.({ done, total });
      if (caughtUp) break;
      await sleep(options.pollMs ?? 500);
    }
    return {
      namespace,
      ends: ends.map((end) => ({ partition: end.partition, offset: end.high.toString() })),
      totals: processor.totals,
    };
  } finally {
    await processor.stop().catch(() => {});
    await admin.disconnect().catch(() => {});
  }
}
