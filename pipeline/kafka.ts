import { setTimeout as sleep } from "node:timers/promises";
import { type Admin, type ITopicConfig, Kafka, Partitioners } from "kafkajs";
import type { Config } from "./config.ts";
import { AgentmeterError } from "./errors.ts";
import { kafkaLogCreator, type Logger } from "./log.ts";

/**
 * The only module that constructs kafkajs objects. kafkajs has had no release since 2023, so keeping it
 * behind this seam lets the client be swapped without touching the processor.
 */
export function createKafka(
  config: Pick<Config, "KAFKA_BROKERS" | "KAFKA_CLIENT_ID">,
  logger: Logger,
): Kafka {
  return new Kafka({
    clientId: config.KAFKA_CLIENT_ID,
    brokers: config.KAFKA_BROKERS,
    logCreator: kafkaLogCreator(logger),
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 },
  });
}

export const DEFAULT_PARTITIONER = Partitioners.DefaultPartitioner;

type TopicsConfig = Pick<
  Config,
  | "AGENTMETER_INPUT_TOPIC"
  | "AGENTMETER_DLQ_TOPIC"
  | "AGENTMETER_EVENTS_TOPIC"
  | "AGENTMETER_STATE_TOPIC"
  | "AGENTMETER_PARTITIONS"
>;

/** Creates the pipeline's topics if missing; the budget-state topic is compacted because only the latest state per account matters. */
export async function ensureTopics(admin: Admin, config: TopicsConfig): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const wanted: ITopicConfig[] = [
    { topic: config.AGENTMETER_INPUT_TOPIC, numPartitions: config.AGENTMETER_PARTITIONS },
    {
      topic: config.AGENTMETER_DLQ_TOPIC,
      numPartitions: 1,
      // A dead letter carries its record's bytes in base64 (a third larger): room for the largest input.
      configEntries: [{ name: "max.message.bytes", value: String(8 * 1024 * 1024) }],
    },
    { topic: config.AGENTMETER_EVENTS_TOPIC, numPartitions: config.AGENTMETER_PARTITIONS },
    {
      topic: config.AGENTMETER_STATE_TOPIC,
      numPartitions: config.AGENTMETER_PARTITIONS,
      configEntries: [
        { name: "cleanup.policy", value: "compact" },
        { name: "min.cleanable.dirty.ratio", value: "0.1" },
      ],
    },
  ];
  // A broker that has just started can take a while to serve a new topic's metadata
  // (UNKNOWN_TOPIC_OR_PARTITION, retriable), and clients that ask before it does give up: create, then
  // wait until every topic is served with a leader for each partition, for a bounded time.
  const deadline = Date.now() + TOPIC_SETTLE_MS;
  let known = existing;
  for (;;) {
    try {
      const missing = wanted.filter((topic) => !known.has(topic.topic));
      if (missing.length > 0) await admin.createTopics({ topics: missing, waitForLeaders: true });
      const { topics } = await admin.fetchTopicMetadata({ topics: wanted.map((topic) => topic.topic) });
      if (topics.every((topic) => topic.partitions.every((partition) => partition.leader >= 0))) return;
    } catch (error) {
      if (!isRetriable(error) || Date.now() > deadline) throw error;
    }
    if (Date.now() > deadline)
      throw new AgentmeterError("SERVICE_UNAVAILABLE", "kafka: topics created but not served within 60 s");
    await sleep(500);
    known = new Set(await admin.listTopics());
  }
}

const TOPIC_SETTLE_MS = 60_000;

function isRetriable(error: unknown): boolean {
  const { name, retriable } = (error ?? {}) as { name?: string; retriable?: boolean };
  return retriable === true || name === "KafkaJSNumberOfRetriesExceeded";
}
