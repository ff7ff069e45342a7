import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel, type Producer } from "kafkajs";
import { type Config, configEnv, loadConfig } from "../../pipeline/config.ts";
import { idempotentProducer } from "../../pipeline/runtime/clients.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import { getServices, uniqueName } from "./services.ts";

export { configEnv };

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
    AGENTMETER_HOLDS_TOPIC: `${id}.holds`,
    AGENTMETER_PLATFORM_DB: `${id}_Platform`.slice(0, 40),
    // Starts unlike the other two, so no app database can be named like them (the config refuses that).
    AGENTMETER_APP_DB_PREFIX: `a${id.slice(1, 18)}_`,
    AGENTMETER_WORKFLOW_DB: `${id}_Workflow`.slice(0, 40),
    CLICKHOUSE_DATABASE: id,
    LOG_LEVEL: process.env.LOG_LEVEL ?? "warn",
    // Several processors share this machine in one test: none binds the fixed metrics port (tests that
    // scrape start their own listener on a free port).
    AGENTMETER_METRICS_PORT: "0",
    // No tick records unless a test asks for them (holds.int does): a processor's ticks are consumed and
    // applied like records, so tests that count what they sent saw a few more under load in CI.
    AGENTMETER_TICK_INTERVAL_MS: "0",
    // AGENTMETER_WRITE_MODE=sync runs the suite against the synchronous loop.
    ...(process.env.AGENTMETER_WRITE_MODE === undefined
      ? {}
      : { AGENTMETER_WRITE_MODE: process.env.AGENTMETER_WRITE_MODE }),
    ...overrides,
  });
}

export function testKafka(config: Config): Kafka {
  return new Kafka({
    clientId: `${config.KAFKA_CLIENT_ID}-test`,
    brokers: config.KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
  });
}

/** A producer as agent runtimes have one (the SDK's: idempotent, murmur2), connected. */
export async function connectProducer(kafka: Kafka): Promise<Producer> {
  const producer = idempotentProducer(kafka);
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
      messages: records.slice(start, start + chunk).map((record) => ({
        key: accountKeyOf(record),
        value: JSON.stringify(record),
        // As if each record reached Kafka when it happened: workloads with fixed dates stay inside the
        // processor's event-time bound whatever day the tests run.
        timestamp: String(Date.parse(record.occurred_at)),
      })),
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
