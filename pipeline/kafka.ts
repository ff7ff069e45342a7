import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Admin,
  type ITopicConfig,
  Kafka,
  type KafkaConfig,
  type Producer,
  type SASLOptions,
} from "kafkajs";
import { AgentmeterError } from "../schemas/errors.ts";
import { AcknowledgedSendProducer, TopicMetadataCache } from "./acknowledged-send-producer.ts";
import type { Config } from "./config.ts";
import { murmur2Partitioner } from "./kafka-partitioner.ts";
import { kafkaLogCreator, type Logger } from "./log.ts";
import { RenewingProducer } from "./renewing-producer.ts";
import { DEAD_LETTER_TOPIC_MAX_BYTES } from "./topic-settings.ts";

export type KafkaSecurityConfig = Partial<
  Pick<
    Config,
    "KAFKA_SSL" | "KAFKA_SSL_CA_FILE" | "KAFKA_SASL_MECHANISM" | "KAFKA_SASL_USERNAME" | "KAFKA_SASL_PASSWORD"
  >
>;

/**
 * The connection security every client gets (processor, SDK, CLI, demo): TLS when KAFKA_SSL is true
 * (with the CA file's certificates if given, else the system's), SASL when a mechanism is set.
 * Values come from a validated Config (pipeline/config.ts), so the combinations are already checked.
 */
export function kafkaSecurityOptions(config: KafkaSecurityConfig): Pick<KafkaConfig, "ssl" | "sasl"> {
  const options: Pick<KafkaConfig, "ssl" | "sasl"> = {};
  if (config.KAFKA_SSL === true) {
    const file = config.KAFKA_SSL_CA_FILE;
    if (file === undefined) {
      options.ssl = true;
    } else {
      let ca: string;
      try {
        ca = readFileSync(file, "utf8");
      } catch (error) {
        throw new AgentmeterError(
          "CONFIG_INVALID",
          `config: KAFKA_SSL_CA_FILE=${JSON.stringify(file)} cannot be read: ${(error as Error).message}`,
          { details: { variable: "KAFKA_SSL_CA_FILE" } },
        );
      }
      if (!ca.includes("-----BEGIN CERTIFICATE-----"))
        throw new AgentmeterError(
          "CONFIG_INVALID",
          `config: KAFKA_SSL_CA_FILE=${JSON.stringify(file)} is invalid: expected PEM certificates`,
          { details: { variable: "KAFKA_SSL_CA_FILE" } },
        );
      options.ssl = { ca: [ca] };
    }
  }
  const mechanism = config.KAFKA_SASL_MECHANISM;
  if (mechanism !== undefined) {
    const username = config.KAFKA_SASL_USERNAME ?? "";
    const password = config.KAFKA_SASL_PASSWORD ?? "";
    // kafkajs types SASL per mechanism (intersections), which TS does not narrow from a union.
    options.sasl = { mechanism, username, password } as SASLOptions;
  }
  return options;
}

/**
 * The Kafka client of the pipeline's runtimes (processor, SDK, CLI, audit): every one of them gets its
 * connection, TLS, SASL, logging and retries from here, and makes its producers, consumers and admins
 * from the client this returns (pipeline/runtime/clients.ts has the producer's options). kafkajs has
 * had no release since 2023, so the less of it outside this seam, the easier a swap. The local stack,
 * the integration-test support and the benches build clients of their own.
 */
export function createKafka(
  config: Pick<Config, "KAFKA_BROKERS" | "KAFKA_CLIENT_ID"> & KafkaSecurityConfig,
  logger: Logger,
): Kafka {
  return new Kafka({
    clientId: config.KAFKA_CLIENT_ID,
    brokers: config.KAFKA_BROKERS,
    ...kafkaSecurityOptions(config),
    logCreator: kafkaLogCreator(logger),
    retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5_000 },
  });
}

/** kafkajs' default partitioner, computed in 32-bit arithmetic (pipeline/kafka-partitioner.ts). */
export const DEFAULT_PARTITIONER = murmur2Partitioner;

/**
 * A producer whose retries cannot duplicate or reorder a record (idempotent, one request in flight),
 * with the murmur2 partitioner the processor checks keys against (pipeline/kafka-partitioner.ts).
 * A send resolves only once the brokers answered for every partition it wrote to, so a retry after a
 * broker died cannot skip records (acknowledged-send-producer.ts). It renews itself when the broker loses
 * its idempotence state (a broker killed mid-request): kafkajs alone would fail every later send
 * (renewing-producer.ts). `logger` hears of both.
 */
export function idempotentProducer(kafka: Kafka, logger?: Logger): Producer {
  const renewing = new RenewingProducer(
    () =>
      kafka.producer({ idempotent: true, maxInFlightRequests: 1, createPartitioner: DEFAULT_PARTITIONER }),
    (error) =>
      logger?.warn({ err: error }, "the broker lost the producer's state: sending on a new producer"),
  );
  return new AcknowledgedSendProducer(renewing, new TopicMetadataCache(kafka), (unanswered) =>
    logger?.warn(
      { partitions: unanswered },
      "a send resolved without the brokers' answer for some partitions: sending their records again",
    ),
  );
}

type TopicsConfig = Pick<
  Config,
  | "AGENTMETER_INPUT_TOPIC"
  | "AGENTMETER_DLQ_TOPIC"
  | "AGENTMETER_EVENTS_TOPIC"
  | "AGENTMETER_STATE_TOPIC"
  | "AGENTMETER_HOLDS_TOPIC"
  | "AGENTMETER_PARTITIONS"
>;

const KEEP_WHOLE = { name: "retention.ms", value: "-1" };

/** Creates the pipeline's topics if missing; the budget-state topic is compacted because only the latest state per account matters. */
export async function ensureTopics(admin: Admin, config: TopicsConfig): Promise<void> {
  const existing = new Set(await admin.listTopics());
  const wanted: ITopicConfig[] = [
    // Kept whole: retention counts from each record's log time, which a producer may set to when the usage
    // happened (a backfill), and a complete audit or replay reads from offset 0 (topic-settings.ts).
    {
      topic: config.AGENTMETER_INPUT_TOPIC,
      numPartitions: config.AGENTMETER_PARTITIONS,
      configEntries: [KEEP_WHOLE],
    },
    {
      topic: config.AGENTMETER_DLQ_TOPIC,
      numPartitions: 1,
      // A dead letter carries its record's bytes in base64 (a third larger): room for the largest input.
      // Kept until re-driven: a letter deleted is a record never billed.
      configEntries: [{ name: "max.message.bytes", value: String(DEAD_LETTER_TOPIC_MAX_BYTES) }, KEEP_WHOLE],
    },
    { topic: config.AGENTMETER_EVENTS_TOPIC, numPartitions: config.AGENTMETER_PARTITIONS },
    // Replies are read only by the runtime waiting for them, within seconds: a day of retention is ample.
    {
      topic: config.AGENTMETER_HOLDS_TOPIC,
      numPartitions: config.AGENTMETER_PARTITIONS,
      configEntries: [{ name: "retention.ms", value: String(24 * 3600 * 1000) }],
    },
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
