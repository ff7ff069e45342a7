/**
 * `npm run bench:cache [-- --accounts N]`: the processor's memory as it touches many distinct accounts,
 * with the account cache bounded (AGENTMETER_MAX_CACHED_ACCOUNTS=1000 per partition) and, in the same
 * run, effectively unbounded. Each record is a small usage of a new end user, so every record adds an
 * account. Prints RSS and heap after each run and the accounts held in memory. Every store object it
 * made is removed at the end unless --keep. Not a test: it prints what this machine does.
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import type { Admin } from "kafkajs";
import { loadConfig } from "../pipeline/config.ts";
import { createKafka } from "../pipeline/kafka.ts";
import { createLogger } from "../pipeline/log.ts";
import { consumerLag } from "../pipeline/ops/metrics.ts";
import { Processor } from "../pipeline/processor/processor.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";
import { idempotentProducer } from "../pipeline/runtime/clients.ts";
import { accountKeyOf, type InputRecordJson } from "../schemas/index.ts";
import { dropNamespaces } from "./cleanup.ts";

const { values } = parseArgs({
  options: {
    accounts: { type: "string", default: "30000" },
    cap: { type: "string" },
    keep: { type: "boolean" },
  },
});
const accounts = Number(values.accounts);
if (!Number.isSafeInteger(accounts) || accounts <= 0) {
  process.stderr.write(`bench:cache: --accounts must be a positive integer, got '${values.accounts}'\n`);
  process.exit(2);
}
const mib = (bytes: number) => `${Math.round(bytes / 1024 / 1024)} MiB`;

/** Records of the topic the group has not committed yet. */
async function lag(admin: Admin, groupId: string, topic: string): Promise<number> {
  const [ends, committed] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  let total = 0;
  for (const records of consumerLag(ends, committed[0]?.partitions ?? []).values()) total += records;
  return total;
}

function records(run: string): InputRecordJson[] {
  const at = new Date(Date.now() - 60_000).toISOString();
  return Array.from({ length: accounts }, (_, n) => ({
    type: "usage",
    record_id: `${run}-${n}`,
    level: "app_usage",
    enterprise_id: `app-${n % 50}`,
    mozaiks_user_id: `creator-${n % 50}`,
    platform_user_id: `user-${n}`,
    workflow_type: "chat_interaction",
    workflow_name: "chat",
    session_id: `s-${n}`,
    chat_id: `c-${n}`,
    agent_usage: { CustomerAgent: { prompt_tokens: 120, completion_tokens: 80 } },
    occurred_at: at,
  })) as InputRecordJson[];
}

async function runOnce(label: string, cap: number): Promise<string> {
  const id = `bench_cache_${Date.now().toString(36)}_${randomBytes(2).toString("hex")}`;
  const config = loadConfig({
    ...process.env,
    AGENTMETER_INPUT_TOPIC: `${id}.usage`,
    AGENTMETER_DLQ_TOPIC: `${id}.deadletter`,
    AGENTMETER_EVENTS_TOPIC: `${id}.events`,
    AGENTMETER_STATE_TOPIC: `${id}.state`,
    AGENTMETER_HOLDS_TOPIC: `${id}.holds`,
    AGENTMETER_GROUP_ID: `${id}-group`,
    AGENTMETER_PLATFORM_DB: `${id}_P`,
    AGENTMETER_APP_DB_PREFIX: `c${id.slice(-6)}_`,
    AGENTMETER_WORKFLOW_DB: `${id}_W`,
    CLICKHOUSE_DATABASE: id,
    AGENTMETER_MAX_CACHED_ACCOUNTS: String(cap),
    LOG_LEVEL: "error",
  });
  const logger = createLogger("error", "bench-cache");
  const processor = new Processor(config, loadBillingConfig(config), logger);
  const kafka = createKafka(config, logger);
  const admin = kafka.admin();
  const started = Date.now();
  try {
    await processor.start();
    await admin.connect();
    const producer = idempotentProducer(kafka);
    await producer.connect();
    const all = records(id);
    for (let start = 0; start < all.length; start += 2_000) {
      await producer.send({
        topic: config.AGENTMETER_INPUT_TOPIC,
        acks: -1,
        messages: all
          .slice(start, start + 2_000)
          .map((record) => ({ key: accountKeyOf(record), value: JSON.stringify(record) })),
      });
    }
    await producer.disconnect();
    let lastPrint = 0;
    for (;;) {
      const left = await lag(admin, config.AGENTMETER_GROUP_ID, config.AGENTMETER_INPUT_TOPIC);
      if (left === 0) break;
      if (Date.now() - lastPrint > 5_000) {
        process.stderr.write(`${label}: ${accounts - left} / ${accounts} accounts\n`);
        lastPrint = Date.now();
      }
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    global.gc?.();
    const memory = process.memoryUsage();
    return `${label}: ${accounts} accounts in ${((Date.now() - started) / 1000).toFixed(1)} s; held in memory ${processor.cachedAccounts}; RSS ${mib(memory.rss)}, heap used ${mib(memory.heapUsed)}`;
  } finally {
    await processor.stop();
    await admin.disconnect();
    if (values.keep !== true) await dropNamespaces([config]);
  }
}

// Each setting in a process of its own, so one run's memory does not weigh on the other's figure.
if (values.cap !== undefined) {
  process.stdout.write(`${await runOnce(`cache cap ${values.cap} per partition`, Number(values.cap))}\n`);
} else {
  for (const cap of ["1000", "10000000"]) {
    const args = [
      "--import",
      "tsx",
      "--expose-gc",
      "bench/cache.ts",
      "--accounts",
      String(accounts),
      "--cap",
      cap,
    ];
    if (values.keep === true) args.push("--keep");
    const child = spawnSync(process.execPath, args, { stdio: ["ignore", "inherit", "inherit"] });
    if (child.status !== 0) process.exit(child.status ?? 1);
  }
}
