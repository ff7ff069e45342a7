/**
 * `npm run bench:sdk`: the SDK's figures on the running stack (not a test; nothing is asserted).
 *  1. producer records/s: the SDK (validation, UUIDv7, batching, acks=all) beside raw kafkajs send;
 *  2. canContinue latency: the local budget view beside a MongoDB point read (strict mode);
 *  3. how long after a top-up canContinue turns true, with the processor running in-process.
 * Every run uses topics and databases of its own (isolatedConfig), removed at the end unless BENCH_KEEP=1.
 */
import { performance } from "node:perf_hooks";
import type { Config } from "../pipeline/config.ts";
import { parseBillingConfig } from "../pipeline/core/index.ts";
import { createKafka } from "../pipeline/kafka.ts";
import { createLogger } from "../pipeline/log.ts";
import { Processor } from "../pipeline/processor/processor.ts";
import { idempotentProducer } from "../pipeline/runtime/clients.ts";
import { accountKeyOf } from "../schemas/index.ts";
import { Agentmeter, type RecordInput, uuidv7 } from "../sdk/index.ts";
import { dropNamespaces, keepData } from "./cleanup.ts";
import { benchNamespace, benchServers } from "./namespace.ts";

/** Every namespace this run made, dropped at the end. */
const namespaces: Config[] = [];
const servers = await benchServers();
let made = 0;
async function isolatedConfig(overrides: Record<string, string> = {}): Promise<Config> {
  const config = benchNamespace(servers, `sdk${made++}`, overrides);
  namespaces.push(config);
  return config;
}

const RECORDS = Number(process.env.BENCH_RECORDS ?? 50_000);
const TOPUPS = Number(process.env.BENCH_TOPUPS ?? 50);
const billing = parseBillingConfig({ app_trial_tokens: { default: 1_000 } });
const logger = createLogger("warn", "bench");

function usage(i: number): RecordInput {
  const user = `user-${i % 500}`;
  return {
    type: "usage",
    level: "app_usage",
    enterprise_id: `bench-app-${i % 7}`,
    mozaiks_user_id: "bench-creator",
    platform_user_id: user,
    workflow_type: "chat_interaction",
    workflow_name: "chat",
    session_id: `s-${user}`,
    chat_id: `c-${user}`,
    agent_usage: { CustomerAgent: { prompt_tokens: 10 + (i % 90), completion_tokens: 5 } },
    occurred_at: new Date().toISOString(),
  };
}

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

function describe(samples: number[]): string {
  const sorted = [...samples].sort((a, b) => a - b);
  const fmt = (ms: number) => (ms < 1 ? `${(ms * 1000).toFixed(1)} us` : `${ms.toFixed(2)} ms`);
  return `p50 ${fmt(quantile(sorted, 0.5))}, p99 ${fmt(quantile(sorted, 0.99))}, max ${fmt(sorted[sorted.length - 1] ?? 0)} (n=${sorted.length})`;
}

async function producerRates(): Promise<void> {
  const config = await isolatedConfig({ LOG_LEVEL: "warn" });
  const meter = await Agentmeter.connect({ config, billing, strict: true, logger });
  // Warm-up (metadata, producer id) outside the timing.
  await meter.send(usage(0));
  let started = performance.now();
  const sends: Promise<unknown>[] = [];
  for (let i = 0; i < RECORDS; i++) sends.push(meter.send(usage(i)));
  await Promise.all(sends);
  const sdkSeconds = (performance.now() - started) / 1000;
  await meter.close();

  const rawConfig = await isolatedConfig({ LOG_LEVEL: "warn" });
  const setup = await Agentmeter.connect({ config: rawConfig, billing, strict: true, logger });
  await setup.close(); // only to create the topics the same way
  const producer = idempotentProducer(createKafka(rawConfig, logger));
  await producer.connect();
  const messages = Array.from({ length: RECORDS }, (_, i) => {
    const record = { ...usage(i), record_id: uuidv7() };
    return { key: accountKeyOf(record as Parameters<typeof accountKeyOf>[0]), value: JSON.stringify(record) };
  });
  await producer.send({ topic: rawConfig.AGENTMETER_INPUT_TOPIC, acks: -1, messages: messages.slice(0, 1) });
  started = performance.now();
  for (let start = 0; start < RECORDS; start += 2_000) {
    await producer.send({
      topic: rawConfig.AGENTMETER_INPUT_TOPIC,
      acks: -1,
      messages: messages.slice(start, start + 2_000),
    });
  }
  const rawBatchSeconds = (performance.now() - started) / 1000;
  const single = 2_000;
  started = performance.now();
  for (let i = 0; i < single; i++) {
    await producer.send({ topic: rawConfig.AGENTMETER_INPUT_TOPIC, acks: -1, messages: [messages[i]!] });
  }
  const rawSingleSeconds = (performance.now() - started) / 1000;
  await producer.disconnect();

  console.log(
    `\n1. producer (${RECORDS} usage records, ~${messages[0]!.value.length} bytes each, acks=all, idempotent)`,
  );
  console.log(`   SDK send (validate + UUIDv7 + batch):     ${Math.round(RECORDS / sdkSeconds)} records/s`);
  console.log(
    `   raw kafkajs send, 2,000 per call:          ${Math.round(RECORDS / rawBatchSeconds)} records/s (pre-serialized, no validation)`,
  );
  console.log(
    `   raw kafkajs send, 1 awaited per call:      ${Math.round(single / rawSingleSeconds)} records/s (${single} records)`,
  );
}

async function latencies(): Promise<void> {
  const config = await isolatedConfig({ LOG_LEVEL: "warn" });
  const processor = new Processor(config, billing, logger);
  await processor.start();
  const meter = await Agentmeter.connect({ config, billing, logger });
  const strict = await Agentmeter.connect({ config, billing, strict: true, logger });
  try {
    const manager = meter.tokenManager({
      enterprise_id: "bench-app",
      mozaiks_user_id: "bench-creator",
      platform_user_id: "bench-user",
      workflow_name: "chat",
    });
    await manager.initializeBudget();
    await manager.trackUsage({ A: { prompt_tokens: 10, completion_tokens: 10 } });
    await manager.syncBudget();
    const ids = {
      level: "app_usage" as const,
      enterprise_id: "bench-app",
      mozaiks_user_id: "bench-creator",
      platform_user_id: "bench-user",
    };
    await strict.budget(ids); // connect outside the timing

    const view: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const t0 = performance.now();
      await meter.budget(ids, manager.chat_id);
      view.push(performance.now() - t0);
    }
    const mongo: number[] = [];
    for (let i = 0; i < 500; i++) {
      const t0 = performance.now();
      await strict.budget(ids, manager.chat_id);
      mongo.push(performance.now() - t0);
    }
    console.log("\n2. canContinue latency (same account, same run)");
    console.log(`   local budget view:   ${describe(view)}`);
    console.log(`   MongoDB point read:  ${describe(mongo)}  (strict mode: readAccount + budgetStateOf)`);

    const topUp: number[] = [];
    for (let i = 0; i < TOPUPS; i++) {
      // Exhaust: one record that spends everything available, and wait until the view says so.
      const status = await manager.syncBudget();
      await manager.trackUsage({
        A: { prompt_tokens: Math.max(1, status.available_tokens), completion_tokens: 0 },
      });
      await meter.waitForBudget(ids, (state) => !state.can_continue);
      const t0 = performance.now();
      await manager.topUp(500);
      await meter.waitForBudget(ids, (state) => state.can_continue);
      topUp.push(performance.now() - t0);
    }
    console.log("\n3. top-up to canContinue true (credit sent -> processor -> state topic -> local view)");
    console.log(`   ${describe(topUp)}`);
  } finally {
    await meter.close();
    await strict.close();
    await processor.stop();
  }
}

let failed = false;
try {
  await producerRates();
  await latencies();
} catch (error) {
  console.error(error);
  failed = true;
} finally {
  const first = namespaces[0];
  if (first !== undefined && !keepData()) {
    await dropNamespaces(namespaces).catch((error: unknown) => {
      console.error(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
    });
  }
}
if (failed) process.exitCode = 1;
