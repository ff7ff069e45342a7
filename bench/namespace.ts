/**
 * Where a benchmark runs: the servers (from KAFKA_BROKERS, MONGODB_URI and CLICKHOUSE_URL, or the local
 * stack, started if needed) and namespaces of its own on them (topics, group, databases), so a run
 * never reads another's data and cleanup.ts can drop exactly what it made.
 */
import { randomBytes } from "node:crypto";
import { stackUp } from "../deploy/local/stack.ts";
import { type Config, loadConfig } from "../pipeline/config.ts";

export type Servers = { KAFKA_BROKERS: string; MONGODB_URI: string; CLICKHOUSE_URL: string };

export async function benchServers(env: NodeJS.ProcessEnv = process.env): Promise<Servers> {
  const { KAFKA_BROKERS, MONGODB_URI, CLICKHOUSE_URL } = env;
  if (KAFKA_BROKERS && MONGODB_URI && CLICKHOUSE_URL) return { KAFKA_BROKERS, MONGODB_URI, CLICKHOUSE_URL };
  const up = await stackUp();
  return {
    KAFKA_BROKERS: up.kafkaBrokers.join(","),
    MONGODB_URI: up.mongoUri,
    CLICKHOUSE_URL: up.clickhouseUrl,
  };
}

/** A namespace named `bench_{name}_{time}{random}`; `settings` are other configuration variables. */
export function benchNamespace(
  servers: Servers,
  name: string,
  settings: Record<string, string | undefined> = {},
): Config {
  const stamp = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
  const id = `bench_${name}_${stamp}`;
  return loadConfig({
    ...settings,
    ...servers,
    KAFKA_CLIENT_ID: id,
    AGENTMETER_GROUP_ID: id,
    AGENTMETER_INPUT_TOPIC: `${id}.usage`,
    AGENTMETER_DLQ_TOPIC: `${id}.dlq`,
    AGENTMETER_EVENTS_TOPIC: `${id}.events`,
    AGENTMETER_STATE_TOPIC: `${id}.state`,
    AGENTMETER_HOLDS_TOPIC: `${id}.holds`,
    AGENTMETER_PLATFORM_DB: `${id}_P`.slice(0, 40),
    // Starts unlike the platform and workflow databases, so no app database can be named like them.
    AGENTMETER_APP_DB_PREFIX: `b${stamp}_`,
    AGENTMETER_WORKFLOW_DB: `${id}_W`.slice(0, 40),
    CLICKHOUSE_DATABASE: id,
    LOG_LEVEL: settings.LOG_LEVEL ?? "warn",
  });
}
