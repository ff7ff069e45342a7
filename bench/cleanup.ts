/**
 * What the benchmarks create, removed again: each works in namespaces of its own (topics, consumer groups,
 * MongoDB and ClickHouse databases), and a run used to leave them all behind (about 150 MongoDB databases
 * and 16 topics per `npm run bench`). `BENCH_KEEP=1` keeps them for a look afterwards.
 */
import { performance } from "node:perf_hooks";
import { Kafka, logLevel } from "kafkajs";
import type { Config } from "../pipeline/config.ts";
import { clickHouseFor } from "../pipeline/runtime/clients.ts";
import { quoteIdent } from "../sinks/clickhouse/client.ts";
import { createMongo } from "../sinks/mongo/client.ts";

export function keepData(): boolean {
  return process.env.BENCH_KEEP === "1";
}

/**
 * Drops the namespaces' topics, consumer groups, ClickHouse database and MongoDB databases; reports on
 * stderr. The namespaces of one run share their servers: the first one's addresses reach them all.
 */
export async function dropNamespaces(
  namespaces: readonly Config[],
  extraGroups: readonly string[] = [],
): Promise<void> {
  const [servers] = namespaces;
  if (servers === undefined) return;
  const started = performance.now();
  const failures: string[] = [];
  const attempt = (what: string) => (error: unknown) => {
    failures.push(`${what}: ${error instanceof Error ? error.message : String(error)}`);
  };
  const kafka = new Kafka({
    clientId: "bench-cleanup",
    brokers: servers.KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  const topics = namespaces.flatMap((c) => [
    c.AGENTMETER_INPUT_TOPIC,
    c.AGENTMETER_DLQ_TOPIC,
    c.AGENTMETER_EVENTS_TOPIC,
    c.AGENTMETER_STATE_TOPIC,
    c.AGENTMETER_HOLDS_TOPIC,
  ]);
  const existing = new Set(await admin.listTopics());
  const presentTopics = topics.filter((t) => existing.has(t));
  if (presentTopics.length > 0) {
    await admin.deleteTopics({ topics: presentTopics }).catch(attempt("kafka topics"));
  }
  const groups = [...namespaces.map((c) => c.AGENTMETER_GROUP_ID), ...extraGroups];
  const known = new Set((await admin.listGroups()).groups.map((g) => g.groupId));
  const presentGroups = groups.filter((g) => known.has(g));
  if (presentGroups.length > 0) {
    await admin.deleteGroups(presentGroups).catch(attempt("kafka consumer groups"));
  }
  await admin.disconnect();

  const clickhouse = clickHouseFor(servers);
  for (const c of namespaces) {
    await clickhouse
      .command({ query: `DROP DATABASE IF EXISTS ${quoteIdent(c.CLICKHOUSE_DATABASE)}` })
      .catch(attempt(`clickhouse ${c.CLICKHOUSE_DATABASE}`));
  }
  await clickhouse.close();

  const mongo = createMongo(servers.MONGODB_URI);
  await mongo.connect();
  const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
  const drop = databases
    .map((d) => d.name)
    .filter((name) =>
      namespaces.some(
        (c) =>
          name === c.AGENTMETER_PLATFORM_DB ||
          name === c.AGENTMETER_WORKFLOW_DB ||
          name.startsWith(c.AGENTMETER_APP_DB_PREFIX),
      ),
    );
  for (const name of drop) {
    await mongo
      .db(name)
      .dropDatabase()
      .catch(attempt(`mongodb ${name}`));
  }
  await mongo.close();
  process.stderr.write(
    `cleanup: removed ${presentTopics.length} topics, ${presentGroups.length} consumer groups, ` +
      `${namespaces.length} ClickHouse and ${drop.length} MongoDB databases in ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s (BENCH_KEEP=1 keeps them)\n`,
  );
  for (const failure of failures) process.stderr.write(`cleanup: ${failure}\n`);
}
