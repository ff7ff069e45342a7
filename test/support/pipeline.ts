import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel, Partitioners, type Producer } from "kafkajs";
import { type Config, loadConfig } from "../../pipeline/config.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import { getServices, uniqueName } from "./services.ts";

/**
 * A processor configuration of its own for one test: unique topics, consumer group, MongoDB databases
 * and ClickHouse database, so tests never see each other's data and need no clean-up.
 */
export async function isolatedConfig(overrides: Record<string, string> = {}): Promise<Config> {
  const services = await getServices();
  const id = uniqueName("t");
  return loadConfig({
    KAFKA_BROKERS: services.kafkaBrokers.join(","),
    MONGODB_URI: services.mongoUri,
    CLICKHOUSE_URL: services.clickhouseUrl,
    KAFKA_CLIENT_ID: id,
    AGENTMETER_GROUP_ID: `${id}-group`,
    AGENTMETER_INPUT_TOPIC: `${id}.usage`,
    AGENTMETER_DLQ_TOPIC: `${id}.deadletter`,
    AGENTMETER_EVENTS_TOPIC: `${id}.events`,
    AGENTMETER_STATE_TOPIC: `${id}.state`,
    AGENTMETER_PLATFORM_DB: `${id}_Platform`.slice(0, 40),
    AGENTMETER_APP_DB_PREFIX: `${id}_A_`.slice(0, 20),
    AGENTMETER_WORKFLOW_DB: `${id}_Workflow`.slice(0, 40),
    CLICKHOUSE_DATABASE: id,
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
    ...overrides,
  });
}

/** Environment variables that give a processor child process the same configuration. */
export function configEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(config)) {
    if (value === undefined) continue;
    env[name] = Array.isArray(value) ? value.join(",") : String(value);
  }
  return env;
}

export function testKafka(config: Config): Kafka {
  return new Kafka({
    clientId: `${config.KAFKA_CLIENT_ID}-test`,
    brokers: config.KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
  });
}

export async function connectProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  return producer;
}

/** Produces records as agent runtimes do: keyed by account, so each account's records stay in order. */
export async function produceRecords(
  producer: Producer,
  topic: string,
  records: readonly InputRecordJson[],
  chunk = 2_000,
): Promise<void> {
  for (let start = 0; start < records.length; start += chunk) {
    await producer.send({
      topic,
      acks: -1,
      messages: records
        .slice(start, start + chunk)
        .map((record) => ({ key: accountKeyOf(record), value: JSON.stringify(record) })),
    });
  }
}

/** Polls until `check` returns a value that is not undefined, or fails with the last seen state. */
export async function eventually<T>(
  what: string,
  check: () => Promise<T | undefined>,
  timeoutMs = 60_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await sleep(250);
  }
  throw new Error(
    `timed out after ${timeoutMs} ms waiting for ${what}${last === undefined ? "" : `: ${String(last)}`}`,
  );
}
