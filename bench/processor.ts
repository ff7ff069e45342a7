/**
 * `npm run bench` (not a test): the processor's figures on the local stack, everything in one run so the
 * ratios hold on a shared, noisy machine. Prints the raw consume ceiling, end-to-end rates over the accounts
 * of 10 apps x 100 users and of 100 apps x 100 users (each line says how many accounts the records reached), the naive one-round-trip-per-record baseline, MongoDB writes per record and per flush,
 * decision latency (produce -> budget state) and store lag (produce -> MongoDB) at steady rates, CPU per
 * record beside the stores' CPU, the write modes `behind` and `sync` side by side, and the processor's RSS.
 * The steady-rate runs also print MongoDB documents written per record, the overspend window as an agent
 * runtime on the SDK's budget view sees it (sdk/client.ts, `Agentmeter.connect`), and the store lag of
 * the run's first half against its second; a short sweep of rates then says which rates the stores keep
 * up with.
 * BENCH_RECORDS, BENCH_SECONDS (60), BENCH_RATES (1000,5000,10000), BENCH_SWEEP (500,1000,1500,2000,2500; "0"
 * skips it), BENCH_SWEEP_SECONDS (30), BENCH_ONLY=latency|sweep|1k|metrics choose; BENCH_BILLING_CONFIG
 * (a file) replaces the default billing rules.
 *
 * Under `node --cpu-prof` the first end-to-end run's time span is written to the profile directory, so
 * `node --import tsx bench/profile-summary.ts <dir>` summarises the processor's part alone.
 *
 * Every run works in namespaces of its own (topics, consumer groups, MongoDB and ClickHouse databases) and
 * removes them at the end, also when it fails; BENCH_KEEP=1 keeps them for a look afterwards.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel, type Producer } from "kafkajs";
import type { Config } from "../pipeline/config.ts";
import { type AccountState, applyRecord, availableTokens, canContinue } from "../pipeline/core/index.ts";
import { ensureTopics } from "../pipeline/kafka.ts";
import { createLogger } from "../pipeline/log.ts";
import { DisabledMetrics } from "../pipeline/ops/metrics.ts";
import { Processor } from "../pipeline/processor/processor.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";
import { idempotentProducer, mongoLayoutFor } from "../pipeline/runtime/clients.ts";
import { generateWorkload } from "../pipeline/simulate/workload.ts";
import { accountKeyOf, decodeRecord, type InputRecordJson } from "../schemas/index.ts";
import { Agentmeter } from "../sdk/client.ts";
import type { AccountIds } from "../sdk/session-client.ts";
import { createMongo } from "../sinks/mongo/client.ts";
import { readAccount } from "../sinks/mongo/read.ts";
import { dropNamespaces, keepData } from "./cleanup.ts";
import { benchNamespace, benchServers, type Servers } from "./namespace.ts";

// The defaults, whatever AGENTMETER_BILLING_CONFIG says: figures stay comparable from run to run.
// BENCH_BILLING_CONFIG (a billing config file) sets other rules, to compare rules on one workload (for
// example the credit rules of docs/billing.md switched off against the defaults).
const billing = loadBillingConfig({ AGENTMETER_BILLING_CONFIG: process.env.BENCH_BILLING_CONFIG });
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
  const storesBefore = storeCpuByService();
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  const startUs = process.hrtime.bigint() / 1000n;
  await processor.start();
  let peakRss = process.memoryUsage().rss;
  while (processor.totals.consumed < records.length) {
    await sleep(100);
    peakRss = Math.max(peakRss, process.memoryUsage().rss);
  }
  const seconds = (performance.now() - started) / 1000;
  const endUs = process.hrtime.bigint() / 1000n;
  const cpu = process.cpuUsage(cpuBefore);
  const storesAfter = storeCpuByService();
  const totals = { ...processor.totals };
  await processor.stop();
  profileWindow(Number(startUs), Number(endUs), records.length);
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
    storesCpu: Object.fromEntries(
      Object.entries(storesAfter).map(([service, s]) => [service, s - (storesBefore[service] ?? 0)]),
    ),
    held: await documentsHeld(config),
    peakRss,
  };
}

/**
 * Under `node --cpu-prof`, the first end-to-end run's span (process.hrtime, the profile's clock) goes to
 * `bench-window-<pid>.json` in the profile directory, for bench/profile-summary.ts.
 */
let windowWritten = false;
function profileWindow(startUs: number, endUs: number, records: number): void {
  if (windowWritten) return;
  const args = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? "").split(" ")];
  if (!args.includes("--cpu-prof")) return;
  windowWritten = true;
  let dir = ".";
  for (const [i, arg] of args.entries()) {
    if (arg.startsWith("--cpu-prof-dir=")) dir = arg.slice("--cpu-prof-dir=".length);
    else if (arg === "--cpu-prof-dir") dir = args[i + 1] ?? dir;
  }
  // Node creates the profile directory only when it writes the profile, at exit.
  mkdirSync(resolve(dir), { recursive: true });
  writeFileSync(
    join(resolve(dir), `bench-window-${process.pid}.json`),
    JSON.stringify({ startUs, endUs, records }),
  );
}

/**
 * Documents in the namespace's MongoDB databases after a run, per collection (app databases summed): for
 * the immutable kinds (finished sessions, chat summaries) what was written, for the others what the
 * coalesced writes left.
 */
async function documentsHeld(config: Config): Promise<Map<string, number>> {
  const mongo = createMongo(config.MONGODB_URI);
  await mongo.connect();
  const counts = new Map<string, number>();
  try {
    const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
    for (const { name } of databases) {
      const kind =
        name === config.AGENTMETER_PLATFORM_DB
          ? "platform"
          : name === config.AGENTMETER_WORKFLOW_DB
            ? "workflow"
            : name.startsWith(config.AGENTMETER_APP_DB_PREFIX)
              ? "app"
              : undefined;
      if (kind === undefined) continue;
      const db = mongo.db(name);
      for (const { name: collection } of await db.listCollections({}, { nameOnly: true }).toArray()) {
        const n = await db.collection(collection).countDocuments({});
        if (n > 0) counts.set(`${kind}.${collection}`, (counts.get(`${kind}.${collection}`) ?? 0) + n);
      }
    }
  } finally {
    await mongo.close();
  }
  return counts;
}

/**
 * CPU seconds the local stack's servers have used so far, per service, from /proc: every live process
 * descending from the service's pid (PostgreSQL's backends each lead a process group of their own, so
 * the process group would miss them), with the CPU of children they have reaped (cutime, cstime), so a
 * backend that ended during a run still counts. What the stores cost beside the processor's own CPU.
 * Empty where /proc or the stack is absent.
 */
function storeCpuByService(): Record<string, number> {
  const ticks = 100; // USER_HZ on Linux
  const services = new Map<number, string>();
  const runDir = join(process.env.AGENTMETER_HOME ?? join(process.cwd(), ".agentmeter"), "run");
  try {
    for (const file of readdirSync(runDir)) {
      if (!file.endsWith(".pid.json")) continue;
      const pid = Number(JSON.parse(readFileSync(join(runDir, file), "utf8")).pid);
      if (Number.isSafeInteger(pid)) services.set(pid, file.slice(0, -".pid.json".length));
    }
  } catch {
    return {};
  }
  const processes = new Map<number, { parent: number; seconds: number }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // Fields after the command (which may hold spaces) start past its closing parenthesis.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const used = Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14]);
      processes.set(Number(entry), { parent: Number(fields[1]), seconds: used / ticks });
    } catch {
      // the process ended meanwhile
    }
  }
  const total: Record<string, number> = {};
  for (const [pid, { seconds }] of processes) {
    let at: number | undefined = pid;
    for (let depth = 0; at !== undefined && at > 1 && depth < 64; depth++) {
      const service = services.get(at);
      if (service !== undefined) {
        total[service] = (total[service] ?? 0) + seconds;
        break;
      }
      at = processes.get(at)?.parent;
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
/** One probe record per tick, to the next probe account. */
const TICK_MS = 100;

/** A grant of `tokens` to an end user of `app`: the probes' records (each raises paid tokens by one). */
function grant(app: string, user: string, id: string, tokens = 1): InputRecordJson {
  return {
    type: "credit",
    record_id: `marker-${id}`,
    kind: "grant",
    level: "app_usage",
    enterprise_id: app,
    mozaiks_user_id: `${app}-creator`,
    platform_user_id: user,
    tokens,
    occurred_at: new Date().toISOString(),
  };
}

/** A one-token grant to probe account `account`. */
function probe(account: number, id: string): InputRecordJson {
  return grant("latency-app", `probe-${account}`, id);
}

/**
 * The overspend probes: SPENDERS end users of their own app, each run by an agent runtime that asks the
 * SDK's budget view (`meter.budget(ids)`, a lookup in its copy of the state topic) before every turn,
 * sends a usage record of USAGE_TOKENS when it says `can_continue`, and otherwise stops, tops up and
 * waits until the view shows it can go on. A spender takes a turn every SPENDER_EVERY ticks.
 */
const SPENDERS = 20;
const SPENDER_EVERY = 2;
const USAGE_TOKENS = 1_200;
/** What a top-up brings the account back to (its deficit is paid too). */
const SPENDER_TOPUP = 10_000;

function spenderUsage(user: string, n: number): InputRecordJson {
  const agent = { prompt_tokens: 300, completion_tokens: 100, response_time_ms: 500, message_count: 1 };
  return {
    type: "usage",
    record_id: `spend-${user}-${n}`,
    level: "app_usage",
    enterprise_id: "spend-app",
    mozaiks_user_id: "spend-app-creator",
    platform_user_id: user,
    user_id: user,
    workflow_type: "chat_interaction",
    workflow_name: "chat",
    session_id: `spend-${user}`,
    chat_id: `spend-${user}`,
    model: "gpt-4o",
    agent_usage: { PlannerAgent: agent, CustomerAgent: agent, ResearchAgent: agent },
    occurred_at: new Date().toISOString(),
    connection_state: "active",
  } as InputRecordJson;
}

function spenderTopUp(user: string, n: number, tokens: number): InputRecordJson {
  return {
    type: "credit",
    record_id: `spend-${user}-${n}-topup`,
    kind: "top_up",
    level: "app_usage",
    enterprise_id: "spend-app",
    mozaiks_user_id: "spend-app-creator",
    platform_user_id: user,
    tokens,
    amount_micros: tokens * 20,
    occurred_at: new Date().toISOString(),
  };
}

/** One time a spender ran dry: its exhausting record's send, when the view showed it, what went after. */
type Episode = { sentAt: number; seenAt?: number; tokensAfter: number };

type Spender = {
  ids: AccountIds;
  user: string;
  /** The account as the billing core computes it from what this spender sent (the truth). */
  account: AccountState | undefined;
  phase: "spending" | "topping";
  sent: number;
  episode: Episode | undefined;
};

function applyTo(spender: Spender, json: InputRecordJson): void {
  const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 65_536 });
  if (!decoded.ok) throw new Error(`bench record does not decode: ${decoded.reason}`);
  spender.account = applyRecord(spender.account, decoded.record, billing).account ?? spender.account;
}

/**
 * The overspend window of the background workload's accounts that run dry (kept from earlier runs for
 * comparison): the billing core finds each account's first record after which it cannot continue; the
 * tokens of that account's later usage records sent before the state topic (read by a raw consumer)
 * showed `can_continue: false` are counted. The workload's runtime tops an account up right after it ran
 * dry, so the dry state and the top-up often land in one batch and only the top-up's state is published;
 * the first `false` seen is then a later exhaustion. `toppedBeforeSeen` counts those accounts.
 */
function overspendWindow(
  records: Iterable<InputRecordJson>,
  sentAt: Float64Array,
  dryAt: ReadonlyMap<string, number>,
) {
  const accounts = new Map<string, AccountState | undefined>();
  const exhaustedAt = new Map<string, number>();
  const toppedBefore = new Set<string>();
  const tokens: number[] = [];
  const windows: number[] = [];
  const overspent = new Map<string, number>();
  let index = -1;
  for (const json of records) {
    index++;
    if (index >= sentAt.length || Number.isNaN(sentAt[index]!)) break;
    const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 65_536 });
    if (!decoded.ok) continue;
    const key = accountKeyOf(decoded.record);
    const exhausted = exhaustedAt.get(key);
    if (exhausted !== undefined) {
      const seen = dryAt.get(key) ?? Number.POSITIVE_INFINITY;
      const at = sentAt[index]!;
      if (at < seen && decoded.record.type === "usage")
        overspent.set(key, (overspent.get(key) ?? 0) + recordTokens(json));
      if (at < seen && decoded.record.type === "credit") toppedBefore.add(key);
      continue;
    }
    const { account } = applyRecord(accounts.get(key), decoded.record, billing);
    accounts.set(key, account);
    if (account !== undefined && !canContinue(account)) {
      exhaustedAt.set(key, index);
      const seen = dryAt.get(key);
      if (seen !== undefined) windows.push(seen - sentAt[index]!);
    }
  }
  for (const key of exhaustedAt.keys()) tokens.push(overspent.get(key) ?? 0);
  return {
    accounts: exhaustedAt.size,
    toppedBeforeSeen: toppedBefore.size,
    tokens: quantiles(tokens),
    windowMs: quantiles(windows),
  };
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

/** Whether the store lag's p99 grew from the run's first half to its second: by 20% and by 1 s. */
function lagGrows(first: { p99: number }, second: { p99: number }): boolean {
  return !(second.p99 <= first.p99 * 1.2 || second.p99 <= first.p99 + 1_000);
}

/**
 * Whether the records sent and not yet durable (decided and pending, or still in Kafka) grew: their mean
 * over the run's second half against its first, by half as much again plus one second of records (a
 * backlog that only swings with the cycles does not grow). The probes' store lag alone misjudges a short
 * run: it can plateau while the backlog grows, once the lag bound holds fetching or cycles grow.
 */
function backlogGrows(samples: readonly { sent: number; durable: number }[], ratePerSecond: number): boolean {
  const half = Math.floor(samples.length / 2);
  const mean = (part: readonly { sent: number; durable: number }[]) =>
    part.reduce((sum, sample) => sum + sample.sent - sample.durable, 0) / Math.max(1, part.length);
  return mean(samples.slice(half)) > 1.5 * mean(samples.slice(0, half)) + ratePerSecond;
}

function backlogText(samples: readonly { sent: number; durable: number }[]): string {
  const half = Math.floor(samples.length / 2);
  const mean = (part: readonly { sent: number; durable: number }[]) =>
    part.reduce((sum, sample) => sum + sample.sent - sample.durable, 0) / Math.max(1, part.length);
  const last = samples[samples.length - 1];
  return `records sent and not yet durable: mean ${fmt(mean(samples.slice(0, half)))} over the first half, ${fmt(mean(samples.slice(half)))} over the second${last === undefined ? "" : `, ${fmt(last.sent - last.durable)} at the end of producing (${fmt(last.durable)} of ${fmt(last.sent)} durable)`}`;
}

type LatencyOptions = {
  /** Run the SDK spenders (the overspend window as a budget-view client sees it). */
  spenders: boolean;
  /** How long to wait after producing for every probe to reach MongoDB. */
  drainMs: number;
};

/**
 * At a steady rate among background load over 1,000 accounts, one probe record per 100 ms to one of
 * PROBES warm accounts. The k-th probe of an account makes its paid tokens 1 + k, so the account's
 * budget state on the state topic (decision latency) and its document in MongoDB (store lag) say which
 * probes they hold. One batched read polls all probe documents, so the measurement does not load the
 * database it measures. With `spenders`, SPENDERS more accounts are run through the SDK (above). The
 * background rate is the nominal rate less the probes' 10/s and the spenders' records, so the total
 * is the nominal rate (top-ups aside). The background records are generated as they are sent (and
 * again afterwards for the overspend of its accounts), so the RSS is the processor's and the
 * benchmark's clients', not a list of a minute of records.
 */
async function latency(
  base: Record<string, string>,
  ratePerSecond: number,
  seconds: number,
  options: LatencyOptions = { spenders: true, drainMs: 240_000 },
) {
  const config = namespace(base, `lat${ratePerSecond}`);
  const kafka = await kafkaWithTopics(config);
  const producer = idempotentProducer(kafka);
  await producer.connect();
  const processor = new Processor(config, billing, createLogger(BENCH_LOG));
  await processor.start();
  const mongo = createMongo(config.MONGODB_URI);
  await mongo.connect();
  const layout = mongoLayoutFor(mongo, config);
  const spenderCount = options.spenders ? SPENDERS : 0;
  const backgroundRate = Math.max(
    0,
    ratePerSecond - 1000 / TICK_MS - (spenderCount * 1000) / TICK_MS / SPENDER_EVERY,
  );
  const backgroundCount = Math.round(backgroundRate * seconds);
  const workload = () =>
    generateWorkload({
      seed: 2,
      records: backgroundCount,
      apps: 10,
      usersPerApp: 100,
      platformShare: 0,
      runId: "bg",
    });
  const background = workload();
  const send = (records: InputRecordJson[]) =>
    producer.send({
      topic: config.AGENTMETER_INPUT_TOPIC,
      messages: records.map((record) => ({ key: accountKeyOf(record), value: JSON.stringify(record) })),
    });
  const spenders: Spender[] = Array.from({ length: spenderCount }, (_, i) => {
    const user = `spender-${i}`;
    return {
      ids: {
        level: "app_usage",
        enterprise_id: "spend-app",
        mozaiks_user_id: "spend-app-creator",
        platform_user_id: user,
      },
      user,
      account: undefined,
      phase: "spending",
      sent: 0,
      episode: undefined,
    };
  });
  // Measure from a processor that has joined its group, loaded the probe (and spender) accounts and
  // written them once.
  const warm = Array.from({ length: PROBES }, (_, account) => probe(account, `warm-${account}`));
  for (const spender of spenders) {
    const record = grant("spend-app", spender.user, `warm-${spender.user}`);
    applyTo(spender, record);
    warm.push(record);
  }
  // Every app database, collection and index the background writes to is created before measuring
  // (the first write to a collection creates it and its indexes, seconds on FerretDB): the workload's
  // records with end users of their own, so the background's accounts start fresh.
  for (const json of generateWorkload({
    seed: 3,
    records: 3_000,
    apps: 10,
    usersPerApp: 100,
    platformShare: 0,
    runId: "warm",
  })) {
    if (json.level !== "app_usage" || json.platform_user_id === undefined) continue;
    const user = `warm-${json.platform_user_id}`;
    warm.push({ ...json, platform_user_id: user, ...("user_id" in json ? { user_id: user } : {}) });
  }
  for (let start = 0; start < warm.length; start += 1_000) await send(warm.slice(start, start + 1_000));
  while (processor.totals.consumed < warm.length) await sleep(100);
  const appUsers = layout.app("latency-app").collection("AppUsers");
  const probeIds = Array.from({ length: PROBES }, (_, account) => `probe-${account}`);
  while ((await appUsers.countDocuments({ _id: { $in: probeIds } } as never)) < PROBES) await sleep(100);
  if (spenderCount > 0) {
    const spendUsers = layout.app("spend-app").collection("AppUsers");
    while ((await spendUsers.countDocuments({})) < spenderCount) await sleep(100);
  }
  // The agent runtime's connection: the SDK's budget view of this namespace's state topic.
  const meter = options.spenders
    ? await Agentmeter.connect({ config, billing, logger: createLogger("warn", "bench-sdk") })
    : undefined;

  const sentAt = new Map<string, number>();
  const decidedAt = new Map<string, number>();
  /** When a budget-view client first saw each account unable to continue. */
  const dryAt = new Map<string, number>();
  /** When each background record was sent (NaN: not sent). */
  const backgroundSentAt = new Float64Array(backgroundCount).fill(Number.NaN);
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
  let polling = true;
  let peakRss = process.memoryUsage().rss;
  const poller = (async () => {
    while (polling && (producing || storedAt.size < sentAt.size)) {
      const docs = await appUsers
        .find({ _id: { $in: probeIds } } as never, { projection: { _id: 1, credited_tokens: 1 } })
        .toArray();
      const now = performance.now();
      for (const doc of docs) seen(storedAt, String(doc._id), Number(doc.credited_tokens), now);
      peakRss = Math.max(peakRss, process.memoryUsage().rss);
      await sleep(50);
    }
  })();

  const episodes: Episode[] = [];
  /** Times the view said an account could not continue where the core said it could (none expected). */
  let viewAhead = 0;
  const takeTurn = async (spender: Spender, now: number, out: InputRecordJson[]) => {
    const status = await meter!.budget(spender.ids);
    if (spender.phase === "topping") {
      if (!status.can_continue) return;
      spender.phase = "spending";
    }
    if (!status.can_continue) {
      // The runtime stops here: what it sent since the exhausting record is the overspend.
      if (spender.episode === undefined) viewAhead++;
      spender.episode = undefined;
      const available = spender.account === undefined ? 0 : availableTokens(spender.account);
      const record = spenderTopUp(spender.user, spender.sent++, SPENDER_TOPUP - Math.min(0, available));
      applyTo(spender, record);
      out.push(record);
      spender.phase = "topping";
      return;
    }
    const record = spenderUsage(spender.user, spender.sent++);
    const could = spender.account === undefined || canContinue(spender.account);
    applyTo(spender, record);
    out.push(record);
    if (spender.episode !== undefined) spender.episode.tokensAfter += USAGE_TOKENS;
    else if (could && spender.account !== undefined && !canContinue(spender.account)) {
      const episode: Episode = { sentAt: now, tokensAfter: 0 };
      episodes.push(episode);
      spender.episode = episode;
      meter!
        .waitForBudget(spender.ids, (state) => !state.can_continue, (seconds + 600) * 1000)
        .then(
          () => {
            episode.seenAt = performance.now();
          },
          () => undefined,
        );
    }
  };

  const perTick = Math.max(0, Math.round((backgroundRate * TICK_MS) / 1000));
  const ticks = Math.round((seconds * 1000) / TICK_MS);
  const before = { ...processor.totals };
  const storesBefore = storeCpuByService();
  const cpuBefore = process.cpuUsage();
  let sent = 0;
  let backgroundSent = 0;
  /** Records sent and made durable, once a second while producing: the backlog's trend. */
  const backlog: { sent: number; durable: number }[] = [];
  const started = performance.now();
  for (let tick = 0; tick < ticks; tick++) {
    const account = tick % PROBES;
    const id = `probe-${account}#${Math.floor(tick / PROBES) + 1}`;
    const now = performance.now();
    sentAt.set(id, now);
    const batch: InputRecordJson[] = [];
    for (let i = 0; i < perTick; i++) {
      const next = background.next();
      if (next.done) break;
      backgroundSentAt[backgroundSent++] = now;
      batch.push(next.value);
    }
    for (const [i, spender] of spenders.entries())
      if (tick % SPENDER_EVERY === i % SPENDER_EVERY) await takeTurn(spender, now, batch);
    batch.push(probe(account, String(tick)));
    await send(batch);
    sent += batch.length;
    if ((tick + 1) % (1000 / TICK_MS) === 0 || tick === ticks - 1)
      backlog.push({ sent, durable: processor.totals.consumed - before.consumed });
    const next = started + (tick + 1) * TICK_MS;
    if (next > performance.now()) await sleep(next - performance.now());
  }
  const producedAt = performance.now();
  producing = false;
  await Promise.race([poller, sleep(options.drainMs)]);
  polling = false;
  await poller;
  const waitedUntil = performance.now();
  const cpu = process.cpuUsage(cpuBefore);
  const storesAfter = storeCpuByService();
  const totals = { ...processor.totals };
  const rss = process.memoryUsage().rss;
  peakRss = Math.max(peakRss, rss);
  await states.disconnect();
  await meter?.close();
  await processor.stop();
  await producer.disconnect();
  await mongo.close();
  const delta = Object.fromEntries(
    Object.entries(totals).map(([name, value]) => [name, value - before[name as keyof typeof before]]),
  ) as typeof totals;
  const storesCpu = Object.fromEntries(
    Object.entries(storesAfter).map(([name, value]) => [name, value - (storesBefore[name] ?? 0)]),
  );
  const since = (times: Map<string, number>) =>
    [...sentAt].map(([id, at]) => (times.get(id) ?? Number.NaN) - at);
  // Store lag per half of the run, by send time; a probe not in MongoDB by the end of the wait counts
  // with the lag it had then (a lower bound).
  const half = started + (ticks * TICK_MS) / 2;
  const halves: [number[], number[]] = [[], []];
  let unstored = 0;
  for (const [id, at] of sentAt) {
    const stored = storedAt.get(id);
    if (stored === undefined) unstored++;
    halves[at < half ? 0 : 1].push((stored ?? waitedUntil) - at);
  }
  // The background again, for the overspend of its accounts, timed on its own: what generating and
  // serializing the records cost the benchmark's process (inside the CPU figure above, not subtracted).
  const generateBefore = process.cpuUsage();
  let generated = 0;
  for (const record of workload()) {
    if (generated++ >= backgroundSent) break;
    JSON.stringify(record);
  }
  const generateCpu = process.cpuUsage(generateBefore);
  const windows = episodes.map((episode) => (episode.seenAt ?? Number.NaN) - episode.sentAt);
  return {
    ratePerSecond,
    seconds,
    sent,
    drained: unstored === 0,
    produceSeconds: (producedAt - started) / 1000,
    decision: quantiles(since(decidedAt)),
    store: quantiles(since(storedAt)),
    storeHalves: [quantiles(halves[0]), quantiles(halves[1])] as const,
    unstored,
    backlog,
    overspend: overspendWindow(workload(), backgroundSentAt, dryAt),
    sdk: {
      spenders: spenderCount,
      episodes: episodes.length,
      unseen: episodes.filter((episode) => episode.seenAt === undefined).length,
      viewAhead,
      windowMs: quantiles(windows),
      tokens: quantiles(episodes.map((episode) => episode.tokensAfter)),
    },
    totals: delta,
    cpuMicrosPerRecord: (cpu.user + cpu.system) / Math.max(1, delta.consumed),
    generateMicrosPerRecord: (generateCpu.user + generateCpu.system) / Math.max(1, backgroundSent),
    storesCpu,
    rss,
    peakRss,
  };
}

type LatencyRun = Awaited<ReturnType<typeof latency>>;

const servers: Servers = await benchServers();
const base: Record<string, string> = {};

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const SWEEP_SECONDS = Number(process.env.BENCH_SWEEP_SECONDS ?? 30);
/** The machine's cores, shared by the stores, the processor and the benchmark. */
const CORES = availableParallelism();

/** The machine's load average (1, 5, 15 min): printed beside every figure, the machine is shared. */
function loadavg(): string {
  try {
    return readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).join(" ");
  } catch {
    return "?";
  }
}

/** µs of store CPU per record and what both cost against all cores: the machine's ceiling. */
function ceiling(processorMicros: number, storesSeconds: number, records: number): string {
  const stores = (storesSeconds * 1e6) / Math.max(1, records);
  const total = processorMicros + stores;
  return `processor ${fmt(processorMicros)} + stores ${fmt(stores)} = ${fmt(total)} µs of CPU per record: ${CORES} cores / that = ${fmt((CORES * 1e6) / total)} records/s at most`;
}

function storesLine(cpu: Record<string, number>): string {
  const total = Object.values(cpu).reduce((sum, seconds) => sum + seconds, 0);
  const parts = Object.entries(cpu)
    .sort((a, b) => b[1] - a[1])
    .map(([name, seconds]) => `${name} ${seconds.toFixed(1)}`)
    .join(", ");
  return `${total.toFixed(1)} s (${parts})`;
}

function latencyLine(lat: LatencyRun): string {
  const { decision, store, totals } = lat;
  const docs = totals.accountWrites + totals.ledgerWrites + totals.projectionWrites;
  const per = (n: number) => (n / Math.max(1, totals.consumed)).toFixed(3);
  const storesSeconds = Object.values(lat.storesCpu).reduce((sum, seconds) => sum + seconds, 0);
  const [first, second] = lat.storeHalves;
  const lines = [
    `at ${fmt(lat.ratePerSecond)}/s for ${lat.seconds} s: decision (produce -> budget state) p50 ${fmt(decision.p50)} ms, ` +
      `p99 ${fmt(decision.p99)} ms, max ${fmt(decision.max)} ms (${decision.n} probes); ` +
      `store lag (produce -> MongoDB) p50 ${fmt(store.p50)} ms, p99 ${fmt(store.p99)} ms, max ${fmt(store.max)} ms (${store.n}); processor RSS ${fmt(lat.rss / 1e6)} MB at the end, ${fmt(lat.peakRss / 1e6)} MB peak`,
    `  store lag by half of the run: first p50 ${fmt(first.p50)} ms, p99 ${fmt(first.p99)} ms; second p50 ${fmt(second.p50)} ms, p99 ${fmt(second.p99)} ms (${lat.unstored} probes not in MongoDB at the end, counted with their lag then): ${lagGrows(first, second) ? "growing" : "flat"}; ` +
      `${backlogText(lat.backlog)}: ${backlogGrows(lat.backlog, lat.ratePerSecond) ? "growing" : "flat"}`,
    `  MongoDB documents written: ${per(docs)} per record (accounts ${per(totals.accountWrites)}, ledgers ${per(totals.ledgerWrites)}, projections ${per(totals.projectionWrites)}) over ${fmt(totals.consumed)} durable records of ${fmt(lat.sent)} sent${lat.drained ? "" : " (not drained: the wait ended first)"}; ${(totals.accountWrites / Math.max(1, totals.flushes)).toFixed(1)} accounts per cycle (${totals.flushes} cycles)`,
    `  CPU: the benchmark's process (processor + producer + two state-topic readers + MongoDB poller) ${fmt(lat.cpuMicrosPerRecord)} µs per durable record (generating and serializing the records, measured apart: ${fmt(lat.generateMicrosPerRecord)} µs, not subtracted); the stores' servers ${storesLine(lat.storesCpu)}`,
    `  ceiling: ${ceiling(lat.cpuMicrosPerRecord, storesSeconds, totals.consumed)}`,
  ];
  if (lat.sdk.spenders > 0) {
    const { sdk } = lat;
    lines.push(
      `  overspend, SDK budget view (${sdk.spenders} accounts, each an agent runtime asking meter.budget() before each ${fmt(USAGE_TOKENS)}-token turn, ${1000 / TICK_MS / SPENDER_EVERY} turns/s; top up when it says stop): ${sdk.episodes} times ran dry, ${sdk.unseen} not seen by the end; ` +
        `exhausting record sent -> view shows can_continue false: p50 ${fmt(sdk.windowMs.p50)} ms, p99 ${fmt(sdk.windowMs.p99)} ms, max ${fmt(sdk.windowMs.max)} ms; ` +
        `tokens sent after it before the runtime saw it: p50 ${fmt(sdk.tokens.p50)}, p99 ${fmt(sdk.tokens.p99)}, max ${fmt(sdk.tokens.max)}${sdk.viewAhead > 0 ? `; the view said stop before the core did ${sdk.viewAhead} times` : ""}`,
    );
  }
  lines.push(
    `  overspend, background accounts (raw state-topic consumer; the workload tops up at once): ${lat.overspend.accounts} accounts ran dry, ${lat.overspend.toppedBeforeSeen} of them topped up before a false was seen; produce of the exhausting record -> can_continue false seen: p50 ${fmt(lat.overspend.windowMs.p50)} ms, p99 ${fmt(lat.overspend.windowMs.p99)} ms; ` +
      `tokens metered after it before then, per account: p50 ${fmt(lat.overspend.tokens.p50)}, p99 ${fmt(lat.overspend.tokens.p99)}, max ${fmt(lat.overspend.tokens.max)}`,
  );
  return lines.join("\n");
}

function runLines(run: Awaited<ReturnType<typeof endToEnd>>, label: string): string[] {
  const docs = run.totals.accountWrites + run.totals.ledgerWrites + run.totals.projectionWrites;
  const storesSeconds = Object.values(run.storesCpu).reduce((sum, seconds) => sum + seconds, 0);
  const held = [...run.held]
    .sort((a, b) => b[1] - a[1])
    .map(([collection, n]) => `${collection} ${(n / run.records).toFixed(3)}`)
    .join(", ");
  return [
    `${fmt(run.accounts)} accounts (${label}), write mode ${run.name.endsWith("sync") ? "sync" : "behind"}: raw consume ${fmt(run.raw)}/s; end to end ${fmt(run.rate)}/s (${run.seconds.toFixed(1)} s) = ${(run.rate / run.raw).toFixed(3)} of raw`,
    `  MongoDB documents written: ${(docs / run.records).toFixed(3)} per record (accounts ${(run.totals.accountWrites / run.records).toFixed(3)}, ledgers ${(run.totals.ledgerWrites / run.records).toFixed(3)}, projections ${(run.totals.projectionWrites / run.records).toFixed(3)}); ${(run.totals.accountWrites / run.totals.flushes).toFixed(1)} accounts per cycle (${run.totals.flushes} cycles)`,
    `  MongoDB documents held after the run, per record (written once each where immutable): ${held}`,
    `  CPU: processor ${fmt(run.cpuMicrosPerRecord)} µs per record; the stores' servers ${storesLine(run.storesCpu)}; RSS peak ${fmt(run.peakRss / 1e6)} MB`,
    `  ceiling: ${ceiling(run.cpuMicrosPerRecord, storesSeconds, run.records)}`,
  ];
}

/**
 * The highest steady rate the stores keep up with: each rate for SWEEP_SECONDS, bounded when neither the
 * probes' store lag p99 (lagGrows: by more than 20% and more than one second) nor the records not yet
 * durable (backlogGrows) grow from the first half of the run to the second. No SDK spenders; the wait
 * for MongoDB after producing is 30 s at most.
 */
async function sweep(rates: readonly number[]): Promise<void> {
  let highest: number | undefined;
  let allBelow = true;
  for (const rate of rates) {
    const load = loadavg();
    const run = await latency(base, rate, SWEEP_SECONDS, { spenders: false, drainMs: 30_000 });
    const [first, second] = run.storeHalves;
    const lagUp = lagGrows(first, second);
    const backlogUp = backlogGrows(run.backlog, rate);
    const grows = lagUp || backlogUp;
    if (!grows && allBelow) highest = rate;
    if (grows) allBelow = false;
    const storesSeconds = Object.values(run.storesCpu).reduce((sum, seconds) => sum + seconds, 0);
    console.log(
      `sweep ${fmt(rate)}/s for ${SWEEP_SECONDS} s (load ${load} -> ${loadavg()}): store lag p99 first half ${fmt(first.p99)} ms, second half ${fmt(second.p99)} ms (${run.unstored} probes not in MongoDB 30 s after) ${lagUp ? "growing" : "flat"}; ${backlogText(run.backlog)}: ${backlogUp ? "growing" : "flat"} -> ${grows ? "NOT BOUNDED" : "bounded"}; ` +
        `decision p99 ${fmt(run.decision.p99)} ms; ` +
        `${((run.totals.accountWrites + run.totals.ledgerWrites + run.totals.projectionWrites) / Math.max(1, run.totals.consumed)).toFixed(3)} docs/record; ${ceiling(run.cpuMicrosPerRecord, storesSeconds, run.totals.consumed)}`,
    );
  }
  console.log(
    `highest steady rate with the store lag bounded: ${highest === undefined ? `none of ${rates.join(", ")}/s` : `${fmt(highest)}/s`} (every lower rate swept bounded too)`,
  );
}

async function main(): Promise<void> {
  console.log(
    `agentmeter processor benchmark: ${RECORDS} records per run, about 3 agents a record; ${CORES} cores, load ${loadavg()}\n`,
  );
  // BENCH_ONLY=latency runs the latency part alone, BENCH_ONLY=sweep the rate sweep alone.
  const only = process.env.BENCH_ONLY;
  const rates = (process.env.BENCH_RATES ?? "1000,5000,10000").split(",").map(Number);
  const sweepRates = (process.env.BENCH_SWEEP ?? "500,1000,1500,2000,2500")
    .split(",")
    .map(Number)
    .filter((rate) => rate > 0);
  const latencies = async () => {
    for (const rate of rates) {
      const load = loadavg();
      const run = await latency(base, rate, SECONDS);
      console.log(`${latencyLine(run)}\n  load ${load} -> ${loadavg()}`);
    }
  };
  if (only === "latency") return latencies();
  if (only === "sweep") return sweep(sweepRates);
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
  console.log(`load after the end-to-end runs: ${loadavg()}`);
  await latencies();
  if (sweepRates.length > 0) await sweep(sweepRates);
  console.log(`load at the end: ${loadavg()}`);
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
