import { type Admin, type ITopicConfig, Kafka, Partitioners } from "kafkajs";
import type { Config } from "./config.ts";
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
  const missing = wanted.filter((topic) => !existing.has(topic.topic));
  if (missing.length === 0) return;
  await admin.createTopics({ topics: missing, waitForLeaders: true });
}
