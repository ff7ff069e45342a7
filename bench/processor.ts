/**
 * `npm run bench` (not a test): the processor's figures on the local stack, everything in one run so the
 * ratios hold on a shared, noisy machine. Prints the raw consume ceiling, end-to-end rates over the accounts
 * of 10 apps x 100 users and of 100 apps x 100 users (each line says how many accounts the records reached), the naive one-round-trip-per-record baseline, MongoDB writes per record and per flush,
 * decision latency (produce -> budget state) and store lag (produce -> MongoDB) at steady rates, CPU per
 * record beside the stores' CPU, the write modes `behind` and `sync` side by side, and the processor's RSS.
 * BENCH_RECORDS, BENCH_SECONDS (60), BENCH_RATES (1000,5000,10000), BENCH_ONLY=latency|1k choose.
 *
 * Every run works in namespaces of its own (topics, consumer groups, MongoDB and ClickHouse databases) and
 * removes them at the end, also when it fails; BENCH_KEEP=1 keeps them for a look afterwards.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel, type Producer } from "kafkajs";
import type { Config } from "../pipeline/config.ts";
import { type AccountState, applyRecord, canContinue, parseBillingConfig } from "../pipeline/core/index.ts";
import { ensureTopics } from "../pipeline/kafka.ts";
import { createLogger } from "../pipeline/log.ts";
import { DisabledMetrics } from "../pipeline/ops/metrics.ts";
import { Processor } from "../pipeline/processor/processor.ts";
import { idempotentProducer, mongoLayoutFor } from "../pipeline/runtime/clients.ts";
import { generateWorkload } from "../pipeline/simulate/workload.ts";
import { accountKeyOf, decodeRecord, type InputRecordJson } from "../schemas/index.ts";
import { createMongo } from "../sinks/mongo/client.ts";
import { readAccount } from "../sinks/mongo/read.ts";
import { dropNamespaces, keepData } from "./cleanup.ts";
import { benchNamespace, benchServers, type Servers } from "./namespace.ts";

// The defaults, whatever AGENTMETER_BILLING_CONFIG says: figures stay comparable from run to run.
const billing = parseBillingConfig({});
const RECORDS = Number(process.env.BENCH_RECORDS ?? 30_000);
// BENCH_LOG=debug prints every flush with the milliseconds of each step: where the time goes.
const BENCH_LOG = process.env.BENCH_LOG ?? "warn";

/** Every namespace this run created, removed at the end unless BENCH_KEEP=1. */
const namespaces: Config[] = [];
/** Consumer groups made outside the namespaces' own group id (the raw consume runs). */
const extraGroups: string[] = [];

function namespace(settings: Record<string, string>, name: string): Config {
  const config = benchNamespace(servers, name, settings);
  namespaces.push(config);
  return config;
}

/** A quiet client for one namespace, its topics created. */
async function kafkaWithTopics(config: Config): Promise<Kafka> {
  const kafka = new Kafka({
    clientId: config.KAFKA_CLIENT_ID,
    brokers: config.KAFKA_BROKERS,
    logLevel: logLevel.NOTHING,
  });
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, config);
  await admin.disconnect();
  return kafka;
}

async function produceAll(
  producer: Producer,
  topic: string,
  records: readonly InputRecordJson[],
): Promise<void> {
  for (let start = 0; start < records.length; start += 5_000) {
    const messages = records
      .slice(start, start + 5_000)
      .map((record) => ({ key: accountKeyOf(record), value: JSON.stringify(record) }));
    await producer.send({ topic, acks: -1, messages });
  }
}

async function rawConsumeRate(kafka: Kafka, topic: string, count: number): Promise<number> {
  const groupId = `${topic}-raw-${Date.now()}`;
  extraGroups.push(groupId);
  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let seen = 0;
  const started = performance.now();
  let done: () => void = () => undefined;
  const finished = new Promise<void>((resolve) => {
    done = resolve;
  });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      seen += batch.messages.length;
      if (seen >= count) done();
    },
  });
  await finished;
  const rate = count / ((performance.now() - started) / 1000);
  await consumer.disconnect();
  return rate;
}

async function endToEnd(
  base: Record<string, string>,
  name: string,
  apps: number,
  usersPerApp: number,
  mode: "behind" | "sync" = "behind",
  metrics: "on" | "off" = "on",
) {
  const config = namespace({ ...base, AGENTMETER_WRITE_MODE: mode }, name);
  const kafka = await kafkaWithTopics(config);
  const producer = idempotentProducer(kafka);
  await producer.connect();
  const records = [
    ...generateWorkload({ seed: 1, records: RECORDS, apps, usersPerApp, platformShare: 0.02, runId: name }),
  ];
  await produceAll(producer, config.AGENTMETER_INPUT_TOPIC, records);
  await producer.disconnect();
  const raw = await rawConsumeRate(kafka, config.AGENTMETER_INPUT_TOPIC, records.length);

  const processor = new Processor(
    config,
    billing,
    createLogger(BENCH_LOG),
    metrics === "off" ? { metrics: new DisabledMetrics() } : {},
  );
  const storesBefore = storeCpuSeconds();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await processor.start();
  while (processor.totals.consumed < records.length) await sleep(100);
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  const storesCpu = storeCpuSeconds() - storesBefore;
  const totals = { ...processor.totals };
  await processor.stop();
  const accounts = new Set(records.map((record) => accountKeyOf(record))).size;
  return {
    name,
    records: records.length,
    accounts,
    raw,
    rate: records.length / seconds,
    seconds,
    totals,
    cpuMicrosPerRecord: (cpu.user + cpu.system) / records.length,
    storesCpu,
  };
}

/**
 * CPU seconds the local stack's servers have used so far (every process of each service's process group,
 * from /proc): what the stores cost beside the processor's own CPU. 0 where /proc or the stack is absent.
 */
function storeCpuSeconds(): number {
  const ticks = 100; // USER_HZ on Linux
  const groups = new Set<number>();
  const runDir = join(process.env.AGENTMETER_HOME ?? join(process.cwd(), ".agentmeter"), "run");
  try {
    for (const file of readdirSync(runDir)) {
      if (!file.endsWith(".pid.json")) continue;
      const pid = Number(JSON.parse(readFileSync(join(runDir, file), "utf8")).pid);
      if (Number.isSafeInteger(pid)) groups.add(pid);
    }
  } catch {
    return 0;
  }
  let total = 0;
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces) start past its closing parenthesis.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const pgrp = Number(fields[2]);
      if (!groups.has(pgrp)) continue;
      total += (Number(fields[11]) + Number(fields[12])) / ticks;
    } catch {
      // the process ended meanwhile
    }
  }
  return total;
}

/** The seed's way: one MongoDB read-modify-write per record (the account document, no batching). */
async function naiveBaseline(base: Record<string, string>, count: number) {
  const config = namespace(base, "naive");
  const mongo = createMongo(config.MONGODB_URI);
  await mongo.connect();
  const layout = mongoLayoutFor(mongo, config);
  const records = [
    ...generateWorkload({
      seed: 1,
      records: count,
      apps: 10,
      usersPerApp: 100,
      platformShare: 0.02,
      runId: "naive",
    }),
  ];
  const started = performance.now();
  for (const json of records) {
    const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 65_536 });
    if (!decoded.ok) continue;
    const record = decoded.record;
    const address = {
      level: record.level,
      enterprise_id: record.enterprise_id,
      mozaiks_user_id: record.mozaiks_user_id,
      platform_user_id: record.platform_user_id,
    };
    const current = (await readAccount(layout, address)) as AccountState | null;
    const { account } = applyRecord(current ?? undefined, record, billing);
    if (account === undefined) continue;
    const collection =
      record.level === "platform"
        ? layout.platform().collection("MozaiksUsers")
        : layout.app(record.enterprise_id).collection("AppUsers");
    const id = record.level === "platform" ? record.mozaiks_user_id : record.platform_user_id!;
    const { _id, ...body } = account as AccountState & { _id?: unknown };
    await collection.replaceOne({ _id: id } as never, body, { upsert: true });
  }
  const rate = records.length / ((performance.now() - started) / 1000);
  await mongo.close();
  return rate;
}

/** Probe accounts: warmed before measuring, so a probe's latency is never an account load. */
const PROBES = 20;

/** A one-token grant to probe account `account`: each raises its paid tokens by one. */
function probe(account: number, id: string): InputRecordJson {
  return {
    type: "credit",
    record_id: `marker-${id}`,
    kind: "grant",
    level: "app_usage",
    enterprise_id: "latency-app",
    mozaiks_user_id: "latency-creator",
    platform_user_id: `probe-${account}`,
    tokens: 1,
    occurred_at: new Date().toISOString(),
  };
}

/**
 * The overspend window of accounts that run dry: the billing core finds each account's first record after
 * which it cannot continue; the tokens of that account's later records sent before a budget-view client
 * (here the state topic, which the SDK's budget view reads) showed `can_continue: false` were metered
 * after the account was out: what an agent runtime acting on the view would have let through.
 */
function overspendWindow(
  records: readonly InputRecordJson[],
  sentAt: readonly number[],
  dryAt: ReadonlyMap<string, number>,
) {
  const accounts = new Map<string, AccountState | undefined>();
  const exhaustedAt = new Map<string, number>();
  const tokens: number[] = [];
  const windows: number[] = [];
  const overspent = new Map<string, number>();
  records.forEach((json, index) => {
    const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 65_536 });
    if (!decoded.ok) return;
    const key = accountKeyOf(decoded.record);
    const exhausted = exhaustedAt.get(key);
    if (exhausted !== undefined) {
      const seen = dryAt.get(key) ?? Number.POSITIVE_INFINITY;
      if ((sentAt[index] ?? 0) < seen && decoded.record.type === "usage")
        overspent.set(key, (overspent.get(key) ?? 0) + recordTokens(json));
      return;
    }
    const { account } = applyRecord(accounts.get(key), decoded.record, billing);
    accounts.set(key, account);
    if (account !== undefined && !canContinue(account)) {
      exhaustedAt.set(key, index);
      const seen = dryAt.get(key);
      if (seen !== undefined) windows.push(seen - (sentAt[index] ?? seen));
    }
  });
  for (const key of exhaustedAt.keys()) tokens.push(overspent.get(key) ?? 0);
  return { accounts: exhaustedAt.size, tokens: quantiles(tokens), windowMs: quantiles(windows) };
}

function recordTokens(json: InputRecordJson): number {
  if (json.type !== "usage") return 0;
  let total = 0;
  for (const usage of Object.values(json.agent_usage ?? {}) as {
    prompt_tokens?: number;
    completion_tokens?: number;
  }[])
    total += Number(usage.prompt_tokens ?? 0) + Number(usage.completion_tokens ?? 0);
  return total;
}

function quantiles(values: number[]) {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/**
 * At a steady rate among background load over 1,000 accounts, one probe record per 100 ms to one of
 * PROBES warm accounts. The k-th probe of an account makes its paid tokens 1 + k, so the account's
 * budget state on the state topic (decision latency) and its document in MongoDB (store lag) say which
 * probes they hold. One batched read polls all probe documents, so the measurement does not load the
 * database it measures.
 */
async function latency(base: Record<string, string>, ratePerSecond: number, seconds: number) {
  const config = namespace(base, `lat${ratePerSecond}`);
  const kafka = await kafkaWithTopics(config);
  const producer = idempotentProducer(kafka);
  await producer.connect();
  const processor = new Processor(config, billing, createLogger(BENCH_LOG));
  await processor.start();
  const mongo = createMongo(config.MONGODB_URI);
  await mongo.connect();
  const layout = mongoLayoutFor(mongo, config);
  const background = [
    ...generateWorkload({
      seed: 2,
      records: ratePerSecond * seconds,
      apps: 10,
      usersPerApp: 100,
      platformShare: 0,
      runId: "bg",
    }),
  ];
  const send = (records: InputRecordJson[]) =>
    producer.send({
      topic: config.AGENTMETER_INPUT_TOPIC,
      messages: records.map((record) => ({ key: accountKeyOf(record), value: JSON.stringify(record) })),
    });
  // Measure from a processor that has joined its group, loaded the probe accounts and written them once.
  await send(Array.from({ length: PROBES }, (_, account) => probe(account, `warm-${account}`)));
  const appUsers = layout.app("latency-app").collection("AppUsers");
  const probeIds = Array.from({ length: PROBES }, (_, account) => `probe-${account}`);
  while ((await appUsers.countDocuments({ _id: { $in: probeIds } } as never)) < PROBES) await sleep(100);

  const sentAt = new Map<string, number>();
  const decidedAt = new Map<string, number>();
  /** When a budget-view client first saw each account unable to continue. */
  const dryAt = new Map<string, number>();
  /** When each background record was sent. */
  const backgroundSentAt: number[] = [];
  const storedAt = new Map<string, number>();
  /** Marks probes 1..paid-1 of an account as seen at `now` (those not seen before). */
  const seen = (into: Map<string, number>, account: string, paid: number, now: number) => {
    for (let k = paid - 1; k >= 1; k--) {
      const id = `${account}#${k}`;
      if (into.has(id)) break;
      into.set(id, now);
    }
  };
  const states = kafka.consumer({ groupId: `${config.AGENTMETER_GROUP_ID}.bench-states` });
  extraGroups.push(`${config.AGENTMETER_GROUP_ID}.bench-states`);
  await states.connect();
  await states.subscribe({ topic: config.AGENTMETER_STATE_TOPIC, fromBeginning: true });
  await states.run({
    eachBatch: async ({ batch }) => {
      const now = performance.now();
      for (const message of batch.messages) {
        const key = message.key?.toString("utf8") ?? "";
        if (message.value === null) continue;
        const state = JSON.parse(message.value.toString("utf8")) as {
          paid_tokens: number | string;
          can_continue: boolean;
        };
        if (!state.can_continue && !dryAt.has(key)) dryAt.set(key, now);
        const at = key.lastIndexOf(":probe-");
        if (at >= 0) seen(decidedAt, key.slice(at + 1), Number(state.paid_tokens), now);
      }
    },
  });
  let producing = true;
  const poller = (async () => {
    while (producing || storedAt.size < sentAt.size) {
      const docs = await appUsers
        .find({ _id: { $in: probeIds } } as never, { projection: { _id: 1, credited_tokens: 1 } })
        .toArray();
      const now = performance.now();
      for (const doc of docs) seen(storedAt, String(doc._id), Number(doc.credited_tokens), now);
      await sleep(50);
    }
  })();
  const tickMs = 100;
  const perTick = Math.max(1, Math.round((ratePerSecond * tickMs) / 1000));
  const started = performance.now();
  for (let tick = 0, sent = 0; sent < background.length; tick++) {
    const account = tick % PROBES;
    const id = `probe-${account}#${Math.floor(tick / PROBES) + 1}`;
    const now = performance.now();
    sentAt.set(id, now);
    for (let i = sent; i < Math.min(sent + perTick, background.length); i++) backgroundSentAt[i] = now;
    await send([...background.slice(sent, sent + perTick), probe(account, String(tick))]);
    sent += perTick;
    const next = started + (tick + 1) * tickMs;
    if (next > performance.now()) await sleep(next - performance.now());
  }
  producing = false;
  await Promise.race([poller, sleep(240_000)]);
  const rss = process.memoryUsage().rss;
  await states.disconnect();
  await processor.stop();
  await producer.disconnect();
  await mongo.close();
  const since = (times: Map<string, number>) =>
    [...sentAt].map(([id, at]) => (times.get(id) ?? Number.NaN) - at);
  return {
    ratePerSecond,
    decision: quantiles(since(decidedAt)),
    store: quantiles(since(storedAt)),
    overspend: overspendWindow(background, backgroundSentAt, dryAt),
    rss,
  };
}

const servers: Servers = await benchServers();
const base: Record<string, string> = {};

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);

function latencyLine(lat: Awaited<ReturnType<typeof latency>>, seconds: number): string {
  const { decision, store } = lat;
  return (
    `at ${fmt(lat.ratePerSecond)}/s for ${seconds} s: decision (produce -> budget state) p50 ${fmt(decision.p50)} ms, ` +
    `p99 ${fmt(decision.p99)} ms, max ${fmt(decision.max)} ms (${decision.n} probes); ` +
    `store lag (produce -> MongoDB) p50 ${fmt(store.p50)} ms, p99 ${fmt(store.p99)} ms, max ${fmt(store.max)} ms (${store.n}); processor RSS ${fmt(lat.rss / 1e6)} MB\n` +
    `  overspend window: ${lat.overspend.accounts} accounts ran dry; produce of the exhausting record -> can_continue false seen: p50 ${fmt(lat.overspend.windowMs.p50)} ms, p99 ${fmt(lat.overspend.windowMs.p99)} ms; ` +
    `tokens metered after it before then, per account: p50 ${fmt(lat.overspend.tokens.p50)}, p99 ${fmt(lat.overspend.tokens.p99)}, max ${fmt(lat.overspend.tokens.max)}`
  );
}

function runLines(run: Awaited<ReturnType<typeof endToEnd>>, label: string): string[] {
  const docs = run.totals.accountWrites + run.totals.ledgerWrites + run.totals.projectionWrites;
  return [
    `${fmt(run.accounts)} accounts (${label}), write mode ${run.name.endsWith("sync") ? "sync" : "behind"}: raw consume ${fmt(run.raw)}/s; end to end ${fmt(run.rate)}/s (${run.seconds.toFixed(1)} s) = ${(run.rate / run.raw).toFixed(3)} of raw`,
    `  MongoDB documents written: ${(docs / run.records).toFixed(3)} per record (accounts ${(run.totals.accountWrites / run.records).toFixed(3)}, ledgers ${(run.totals.ledgerWrites / run.records).toFixed(3)}, projections ${(run.totals.projectionWrites / run.records).toFixed(3)}); ${(run.totals.accountWrites / run.totals.flushes).toFixed(1)} accounts per cycle (${run.totals.flushes} cycles)`,
    `  CPU: processor ${fmt(run.cpuMicrosPerRecord)} µs per record; the stores' servers ${run.storesCpu.toFixed(1)} s in all`,
  ];
}

async function main(): Promise<void> {
  console.log(`agentmeter processor benchmark: ${RECORDS} records per run, about 3 agents a record\n`);
  // BENCH_ONLY=latency runs the latency part alone.
  const only = process.env.BENCH_ONLY;
  const rates = (process.env.BENCH_RATES ?? "1000,5000,10000").split(",").map(Number);
  if (only === "latency") {
    for (const rate of rates) console.log(latencyLine(await latency(base, rate, SECONDS), SECONDS));
    return;
  }
  const small = await endToEnd(base, "a1k", 10, 100);
  for (const line of runLines(small, "10 apps x 100 users")) console.log(line);
  // BENCH_ONLY=1k stops after the 1,000-account run (e.g. under --cpu-prof, to see where the time goes).
  if (only === "1k") return;
  // What serving metrics costs: the same run with metrics off (nothing counted, nothing polled) and on
  // again, each pair in alternating order after the run above warmed the process up (the first run of a
  // process pays for compiling the code, which would be charged to whichever ran first).
  const pairs: { on: number; off: number; onCpu: number; offCpu: number }[] = [];
  for (const [i, order] of (["off-on", "on-off"] as const).entries()) {
    const runs = new Map<"on" | "off", Awaited<ReturnType<typeof endToEnd>>>();
    for (const metrics of order.split("-") as ("on" | "off")[])
      runs.set(metrics, await endToEnd(base, `a1km${metrics}${i}`, 10, 100, "behind", metrics));
    const on = runs.get("on")!;
    const off = runs.get("off")!;
    pairs.push({ on: on.rate, off: off.rate, onCpu: on.cpuMicrosPerRecord, offCpu: off.cpuMicrosPerRecord });
    console.log(
      `metrics ${order}: end to end on ${fmt(on.rate)}/s, off ${fmt(off.rate)}/s; processor CPU per record on ${fmt(on.cpuMicrosPerRecord)} µs, off ${fmt(off.cpuMicrosPerRecord)} µs`,
    );
  }
  const mean = (pick: (pair: (typeof pairs)[number]) => number) =>
    pairs.reduce((total, pair) => total + pick(pair), 0) / pairs.length;
  console.log(
    `metrics on / off (mean of ${pairs.length} pairs): end to end ${(mean((p) => p.on) / mean((p) => p.off)).toFixed(3)}, processor CPU per record ${(mean((p) => p.onCpu) / mean((p) => p.offCpu)).toFixed(3)}`,
  );
  // BENCH_ONLY=metrics stops here (the metrics comparison alone).
  if (only === "metrics") return;
  const smallSync = await endToEnd(base, "a1ksync", 10, 100, "sync");
  for (const line of runLines(smallSync, "10 apps x 100 users")) console.log(line);
  // The workload draws users at random: with 30,000 records not all 100 x 100 get one.
  const large = await endToEnd(base, "a10k", 100, 100);
  for (const line of runLines(large, "of 100 apps x 100 users")) console.log(line);
  const naive = await naiveBaseline(base, 2_000);
  console.log(`naive baseline (one MongoDB read + write per record): ${fmt(naive)}/s`);
  console.log(
    `ratios: end to end / naive = ${(small.rate / naive).toFixed(1)}x behind, ${(smallSync.rate / naive).toFixed(1)}x sync (${fmt(small.accounts)} accounts), ${(large.rate / naive).toFixed(1)}x behind (${fmt(large.accounts)}); behind / sync = ${(small.rate / smallSync.rate).toFixed(2)}; processor CPU per record behind / sync = ${(small.cpuMicrosPerRecord / smallSync.cpuMicrosPerRecord).toFixed(2)}`,
  );
  for (const rate of rates) console.log(latencyLine(await latency(base, rate, SECONDS), SECONDS));
}

let exitCode = 0;
try {
  await main();
} catch (error) {
  console.error(error);
  exitCode = 1;
} finally {
  if (keepData()) {
    console.error(`BENCH_KEEP=1: kept ${namespaces.length} namespaces (bench_* topics and databases)`);
  } else {
    await dropNamespaces(namespaces, extraGroups).catch((error: unknown) => {
      console.error(`cleanup failed: ${error instanceof Error ? error.message : String(error)}`);
      exitCode = 1;
    });
  }
}
process.exit(exitCode);
