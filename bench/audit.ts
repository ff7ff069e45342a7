/**
 * `npm run bench:audit [-- --records N]`: how fast `agentmeter audit` reads and recomputes a topic.
 * Produces N records (default 1,000,000) of the deterministic workload to a topic of its own, then audits
 * it against an empty namespace of its own (no processor runs: writing a million records through the
 * stores would load a shared stack for long, and the audit's cost is reading the topic and recomputing).
 * Every store object it made is removed at the end. Not a test: it prints what this machine does.
 */
import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { runAudit } from "../pipeline/audit/run-audit.ts";
import { loadConfig } from "../pipeline/config.ts";
import { createKafka, DEFAULT_PARTITIONER, ensureTopics } from "../pipeline/kafka.ts";
import { createLogger } from "../pipeline/log.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";
import { clickHouseFor } from "../pipeline/runtime/clients.ts";
import { generateWorkload } from "../pipeline/simulate/workload.ts";
import { accountKeyOf } from "../schemas/index.ts";
import { applyMigrations } from "../sinks/clickhouse/migrations.ts";
import { dropNamespaces } from "./cleanup.ts";

const { values } = parseArgs({
  options: { records: { type: "string", default: "1000000" }, keep: { type: "boolean" } },
});
const total = Number(values.records);
if (!Number.isSafeInteger(total) || total <= 0) {
  process.stderr.write(`bench:audit: --records must be a positive integer, got '${values.records}'\n`);
  process.exit(2);
}

const id = `bench_audit_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const config = loadConfig({
  ...process.env,
  AGENTMETER_INPUT_TOPIC: `${id}.usage`,
  AGENTMETER_DLQ_TOPIC: `${id}.deadletter`,
  AGENTMETER_EVENTS_TOPIC: `${id}.events`,
  AGENTMETER_STATE_TOPIC: `${id}.state`,
  AGENTMETER_HOLDS_TOPIC: `${id}.holds`,
  AGENTMETER_PLATFORM_DB: `${id}_P`,
  AGENTMETER_APP_DB_PREFIX: `${id.slice(0, 16)}_A_`,
  AGENTMETER_WORKFLOW_DB: `${id}_W`,
  CLICKHOUSE_DATABASE: id,
});
const logger = createLogger("error", "bench-audit");
const kafka = createKafka(config, logger);
const admin = kafka.admin();
const clickhouse = clickHouseFor(config);
const seconds = (ms: number) => (ms / 1000).toFixed(1);

try {
  await admin.connect();
  await ensureTopics(admin, config);
  await applyMigrations(clickhouse, config.CLICKHOUSE_DATABASE);

  // Not the runtimes' idempotent producer (pipeline/runtime/clients.ts): that one allows one request in
  // flight, and this setup keeps four sends in flight to fill the topic quickly; what is timed is the audit.
  const producer = kafka.producer({ createPartitioner: DEFAULT_PARTITIONER });
  await producer.connect();
  const produceStart = Date.now();
  const inFlight: Promise<unknown>[] = [];
  let chunk: { key: string; value: string }[] = [];
  let produced = 0;
  const workload = generateWorkload({
    seed: 1,
    records: total,
    apps: 20,
    usersPerApp: 50,
    runId: "bench",
    stepMs: 50,
  });
  for (const record of workload) {
    chunk.push({ key: accountKeyOf(record as never), value: JSON.stringify(record) });
    if (chunk.length === 5_000) {
      inFlight.push(producer.send({ topic: config.AGENTMETER_INPUT_TOPIC, acks: -1, messages: chunk }));
      chunk = [];
      if (inFlight.length >= 4) await inFlight.shift();
    }
    if (++produced % 100_000 === 0) process.stderr.write(`produce: ${produced} / ${total}\n`);
  }
  if (chunk.length > 0)
    inFlight.push(producer.send({ topic: config.AGENTMETER_INPUT_TOPIC, acks: -1, messages: chunk }));
  await Promise.all(inFlight);
  await producer.disconnect();
  const produceMs = Date.now() - produceStart;
  process.stdout.write(
    `produced ${total} records in ${seconds(produceMs)} s (${Math.round(total / (produceMs / 1000))}/s)\n`,
  );

  const started = Date.now();
  // CPU time as well as wall time: on a shared 2-core box the wall rate says as much about the neighbours.
  const cpuStart = process.cpuUsage();
  let readDoneAt = 0;
  let lastPrint = 0;
  const report = await runAudit({
    config,
    billing: loadBillingConfig(config),
    range: { kind: "all" },
    logger,
    onProgress: ({ read, total: all }) => {
      const now = Date.now();
      if (read === all) readDoneAt = now;
      if (now - lastPrint < 2_000 && read < all) return;
      lastPrint = now;
      process.stderr.write(
        `audit: ${read} / ${all} records (${Math.round(read / ((now - started) / 1000))}/s)\n`,
      );
    },
  });
  const auditMs = Date.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  const cpuMs = (cpu.user + cpu.system) / 1000;
  const readMs = (readDoneAt || Date.now()) - started;
  process.stdout.write(
    [
      `audit of ${report.counts.messages} messages (${report.counts.records} records, ${report.counts.usage_outcomes} usage outcomes):`,
      `  read + recompute: ${seconds(readMs)} s, ${Math.round(report.counts.records / (readMs / 1000))} records/s`,
      `  whole audit (incl. reading the stores and diffing): ${seconds(auditMs)} s, ${Math.round(report.counts.records / (auditMs / 1000))} records/s`,
      `  CPU time of the audit process: ${seconds(cpuMs)} s, ${Math.round(report.counts.records / (cpuMs / 1000))} records per CPU-second`,
      `  (the namespace is empty on purpose: ${report.differences.length} differences reported)`,
      "",
    ].join("\n"),
  );
} finally {
  await admin.disconnect();
  await clickhouse.close();
  if (values.keep !== true) await dropNamespaces([config]);
}
