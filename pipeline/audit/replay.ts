import { setTimeout as sleep } from "node:timers/promises";
import { createMongo } from "../../sinks/mongo/client.ts";
import type { Config } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import { AgentmeterError } from "../errors.ts";
import { createKafka } from "../kafka.ts";
import type { Logger } from "../log.ts";
import { Processor } from "../processor/processor.ts";
import type { ProcessorTotals } from "../processor/totals.ts";
import { suffixedConfig } from "./namespace.ts";
import { reach } from "./reach.ts";

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
 * Rebuilds a namespace from the topic with the live processor's own code: a Processor whose group,
 * databases and output topics carry the suffix consumes the topic from the beginning until its group has
 * committed every partition up to the end captured at start, then stops. Its commit is the last step of a
 * flush, so a committed end means every store of the namespace holds the records before it.
 */
/**
 * A replay writes into databases named by its suffix, and app databases by the suffix alone (to stay
 * under 63 bytes): another replay with that suffix, of this namespace or another on the same server,
 * may have written them. Replaying on top would find its records already applied (as duplicates) and
 * audit clean while proving nothing, so a namespace that holds any of them is refused.
 */
async function refuseUsedNamespace(namespace: Config, suffix: string): Promise<void> {
  const mongo = createMongo(namespace.MONGODB_URI);
  try {
    const { databases } = await reach("MongoDB", namespace.MONGODB_URI, () =>
      mongo.db("admin").admin().listDatabases({ nameOnly: true }),
    );
    const taken = databases
      .map((db) => db.name)
      .filter(
        (name) =>
          name === namespace.AGENTMETER_PLATFORM_DB ||
          name === namespace.AGENTMETER_WORKFLOW_DB ||
          name.startsWith(namespace.AGENTMETER_APP_DB_PREFIX),
      );
    if (taken.length > 0)
      throw new AgentmeterError("CLI_USAGE", usedNamespaceRefusal(namespace, suffix, taken));
  } finally {
    await mongo.close();
  }
}

/**
 * The refusal of a replay into a used suffix: the MongoDB databases found, and everything else of the
 * namespace a reuse must drop with them. The ClickHouse database holds the earlier replay's rows (the
 * audit would compare them), and the consumer group its committed offsets (the processor would start
 * where the earlier replay stopped, at the end of the topic, and apply nothing).
 */
export function usedNamespaceRefusal(
  namespace: Pick<
    Config,
    | "AGENTMETER_PLATFORM_DB"
    | "AGENTMETER_WORKFLOW_DB"
    | "AGENTMETER_APP_DB_PREFIX"
    | "CLICKHOUSE_DATABASE"
    | "AGENTMETER_GROUP_ID"
  >,
  suffix: string,
  taken: readonly string[],
): string {
  const found = `${taken.slice(0, 3).join(", ")}${taken.length > 3 ? ` and ${taken.length - 3} more` : ""}`;
  return (
    `--suffix ${suffix}: the replay namespace is not empty (MongoDB ${found}). ` +
    `To replay into this suffix again, drop all of it: the MongoDB databases ${namespace.AGENTMETER_PLATFORM_DB}, ` +
    `${namespace.AGENTMETER_WORKFLOW_DB} and ${namespace.AGENTMETER_APP_DB_PREFIX}{app} (every app), ` +
    `the ClickHouse database ${namespace.CLICKHOUSE_DATABASE} and the Kafka consumer group ` +
    `${namespace.AGENTMETER_GROUP_ID} (its committed offsets); or choose another suffix`
  );
}

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
  // Before any client is opened: a refusal leaves nothing connected behind it.
  await refuseUsedNamespace(namespace, options.suffix);
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
