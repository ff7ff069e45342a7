/**
 * `npm run bench` (not a test): the processor's figures on the local stack, everything in one run so the
 * ratios hold on a shared, noisy machine. Prints the raw consume ceiling, end-to-end rates over 1,000 and
 * 10,000 accounts, the naive one-round-trip-per-record baseline, MongoDB writes per record and per flush,
 * produce-to-balance latency at a steady rate, and the processor's RSS.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { Kafka, logLevel, Partitioners, type Producer } from "kafkajs";
import { stackUp } from "../deploy/local/stack.ts";
import { type Config, loadConfig } from "../pipeline/config.ts";
import { type AccountState, applyRecord, parseBillingConfig } from "../pipeline/core/index.ts";
import { ensureTopics } from "../pipeline/kafka.ts";
import { createLogger } from "../pipeline/log.ts";
import { Processor } from "../pipeline/processor/processor.ts";
import { generateWorkload } from "../pipeline/simulate/workload.ts";
import { accountKeyOf, decodeRecord, type InputRecordJson } from "../schemas/index.ts";
import { createMongo } from "../sinks/mongo/client.ts";
import { layoutNames, MongoLayout } from "../sinks/mongo/layout.ts";
import { readAccount } from "../sinks/mongo/read.ts";

const billing = parseBillingConfig({});
const RECORDS = Number(process.env.BENCH_RECORDS ?? 30_000);
// BENCH_LOG=debug prints every flush with the milliseconds of each step: where the time goes.
const BENCH_LOG = process.env.BENCH_LOG ?? "warn";

function namespace(base: Record<string, string>, name: string): Config {
  const id = `bench_${name}_${Date.now().toString(36)}`;
  return loadConfig({
    ...base,
    KAFKA_CLIENT_ID: id,
    AGENTMETER_GROUP_ID: id,
    AGENTMETER_INPUT_TOPIC: `${id}.usage`,
    AGENTMETER_DLQ_TOPIC: `${id}.dlq`,
    AGENTMETER_EVENTS_TOPIC: `${id}.events`,
    AGENTMETER_STATE_TOPIC: `${id}.state`,
    AGENTMETER_PLATFORM_DB: `${id}_P`.slice(0, 40),
    AGENTMETER_APP_DB_PREFIX: `b${Date.now().toString(36)}_`,
    AGENTMETER_WORKFLOW_DB: `${id}_W`.slice(0, 40),
    CLICKHOUSE_DATABASE: id,
    LOG_LEVEL: "warn",
  });
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
  const consumer = kafka.consumer({ groupId: `${topic}-raw-${Date.now()}` });
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

async function endToEnd(base: Record<string, string>, name: string, apps: number, usersPerApp: number) {
  const config = namespace(base, name);
  const kafka = await kafkaWithTopics(config);
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  const records = [
    ...generateWorkload({ seed: 1, records: RECORDS, apps, usersPerApp, platformShare: 0.02, runId: name }),
  ];
  await produceAll(producer, config.AGENTMETER_INPUT_TOPIC, records);
  await producer.disconnect();
  const raw = await rawConsumeRate(kafka, config.AGENTMETER_INPUT_TOPIC, records.length);

  const processor = new Processor(config, billing, createLogger(BENCH_LOG));
  const started = performance.now();
  await processor.start();
  while (processor.totals.consumed < records.length) await sleep(100);
  const seconds = (performance.now() - started) / 1000;
  const totals = { ...processor.totals };
  await processor.stop();
  const accounts = new Set(records.map((record) => accountKeyOf(record))).size;
  return { name, records: records.length, accounts, raw, rate: records.length / seconds, seconds, totals };
}

/** The seed's way: one MongoDB read-modify-write per record (the account document, no batching). */
async function naiveBaseline(base: Record<string, string>, count: number) {
  const config = namespace(base, "naive");
  const mongo = createMongo(config.MONGODB_URI);
  await mongo.connect();
  const layout = new MongoLayout(mongo, layoutNames(config));
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

/** A credit that creates its own end-user account: it shows in MongoDB when its flush is durable. */
function probe(name: string): InputRecordJson {
  return {
    type: "credit",
    record_id: `marker-${name}`,
    kind: "grant",
    level: "app_usage",
    enterprise_id: "latency-app",
    mozaiks_user_id: "latency-creator",
    platform_user_id: `probe-${name}`,
    tokens: 1,
    occurred_at: new Date().toISOString(),
  };
}

/** Produce-to-balance latency: marker records at a steady rate among background load, polled in MongoDB. */
async function latency(base: Record<string, string>, ratePerSecond: number, seconds: number) {
  const config = namespace(base, `lat${ratePerSecond}`);
  const kafka = await kafkaWithTopics(config);
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const processor = new Processor(config, billing, createLogger(BENCH_LOG));
  await processor.start();
  const mongo = createMongo(config.MONGODB_URI);
  await mongo.connect();
  const layout = new MongoLayout(mongo, layoutNames(config));
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
  // Measure from a processor that has joined its group and flushed once, not from its start-up.
  const warmup = probe("warmup");
  await producer.send({
    topic: config.AGENTMETER_INPUT_TOPIC,
    messages: [{ key: accountKeyOf(warmup), value: JSON.stringify(warmup) }],
  });
  const appUsers = layout.app("latency-app").collection("AppUsers");
  while ((await appUsers.countDocuments({ _id: "probe-warmup" } as never)) === 0) await sleep(100);
  const samples: number[] = [];
  // Markers still waiting: probe id -> when it was sent. One batched read polls them all, so the
  // measurement does not load the database it measures.
  const waiting = new Map<string, number>();
  let producing = true;
  const poller = (async () => {
    while (producing || waiting.size > 0) {
      if (waiting.size > 0) {
        const found = await appUsers
          .find({ _id: { $in: [...waiting.keys()] } } as never, { projection: { _id: 1 } })
          .toArray();
        const now = performance.now();
        for (const doc of found) {
          const sentAt = waiting.get(String(doc._id));
          if (sentAt !== undefined) samples.push(now - sentAt);
          waiting.delete(String(doc._id));
        }
      }
      await sleep(50);
    }
  })();
  const tickMs = 100;
  const perTick = Math.max(1, Math.round((ratePerSecond * tickMs) / 1000));
  const started = performance.now();
  for (let tick = 0, sent = 0; sent < background.length; tick++) {
    const messages = background
      .slice(sent, sent + perTick)
      .map((record) => ({ key: accountKeyOf(record), value: JSON.stringify(record) }));
    sent += perTick;
    const marker = probe(String(tick));
    const sentAt = performance.now();
    await producer.send({
      topic: config.AGENTMETER_INPUT_TOPIC,
      messages: [...messages, { key: accountKeyOf(marker), value: JSON.stringify(marker) }],
    });
    waiting.set(`probe-${tick}`, sentAt);
    const next = started + (tick + 1) * tickMs;
    if (next > performance.now()) await sleep(next - performance.now());
  }
  producing = false;
  await Promise.race([poller, sleep(180_000)]);
  const rss = process.memoryUsage().rss;
  await processor.stop();
  await producer.disconnect();
  await mongo.close();
  samples.sort((a, b) => a - b);
  const at = (q: number) =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? Number.NaN;
  return { ratePerSecond, samples: samples.length, p50: at(0.5), p99: at(0.99), rss };
}

const { KAFKA_BROKERS, MONGODB_URI, CLICKHOUSE_URL } = process.env;
const base =
  KAFKA_BROKERS && MONGODB_URI && CLICKHOUSE_URL
    ? { KAFKA_BROKERS, MONGODB_URI, CLICKHOUSE_URL }
    : await stackUp().then((up) => ({
        KAFKA_BROKERS: up.kafkaBrokers.join(","),
        MONGODB_URI: up.mongoUri,
        CLICKHOUSE_URL: up.clickhouseUrl,
      }));

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log(`agentmeter processor benchmark: ${RECORDS} records per run, about 3 agents a record\n`);
// BENCH_ONLY=latency runs the latency part alone.
const only = process.env.BENCH_ONLY;
if (only === "latency") {
  for (const rate of (process.env.BENCH_RATES ?? "500,5000").split(",").map(Number)) {
    const lat = await latency(base, rate, 10);
    console.log(
      `produce-to-balance latency at ${fmt(rate)}/s for 10 s: p50 ${fmt(lat.p50)} ms, p99 ${fmt(lat.p99)} ms (${lat.samples} samples); processor RSS ${fmt(lat.rss / 1e6)} MB`,
    );
  }
  process.exit(0);
}
const small = await endToEnd(base, "a1k", 10, 100);
// BENCH_ONLY=1k stops after the 1,000-account run (e.g. under --cpu-prof, to see where the time goes).
if (only === "1k") {
  console.log(
    `1,000 accounts: raw consume ${fmt(small.raw)}/s; end to end ${fmt(small.rate)}/s (${small.seconds.toFixed(1)} s)`,
  );
  process.exit(0);
}
console.log(
  `1,000 accounts: raw consume ${fmt(small.raw)}/s; end to end ${fmt(small.rate)}/s (${small.seconds.toFixed(1)} s, ${small.accounts} accounts)`,
);
console.log(
  `  MongoDB account writes: ${(small.totals.accountWrites / small.records).toFixed(3)} per record, ${(small.totals.accountWrites / small.totals.flushes).toFixed(1)} per flush (${small.totals.flushes} flushes)`,
);
const large = await endToEnd(base, "a10k", 100, 100);
console.log(
  `10,000 accounts: raw consume ${fmt(large.raw)}/s; end to end ${fmt(large.rate)}/s (${large.seconds.toFixed(1)} s, ${large.accounts} accounts)`,
);
console.log(
  `  MongoDB account writes: ${(large.totals.accountWrites / large.records).toFixed(3)} per record, ${(large.totals.accountWrites / large.totals.flushes).toFixed(1)} per flush (${large.totals.flushes} flushes)`,
);
const naive = await naiveBaseline(base, 2_000);
console.log(`naive baseline (one MongoDB read + write per record): ${fmt(naive)}/s`);
console.log(
  `ratios: end to end / naive = ${(small.rate / naive).toFixed(1)}x (1k accounts), ${(large.rate / naive).toFixed(1)}x (10k); end to end / raw consume = ${(small.rate / small.raw).toFixed(3)} (1k)`,
);
for (const rate of [500, 5_000]) {
  const lat = await latency(base, rate, 10);
  console.log(
    `produce-to-balance latency at ${fmt(rate)}/s for 10 s: p50 ${fmt(lat.p50)} ms, p99 ${fmt(lat.p99)} ms (${lat.samples} samples); processor RSS ${fmt(lat.rss / 1e6)} MB`,
  );
}
process.exit(0);
