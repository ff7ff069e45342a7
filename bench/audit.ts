/**
 * `npm run bench:audit [-- --records N] [-- --workers 1,2]`: how fast `agentmeter audit` reads and
 * recomputes a topic, with each worker count of the list in the same run (same topic, same machine
 * minute), and whether their reports are byte-identical (sha256 of each report).
 * Produces N records (default 1,000,000) of the deterministic workload to a topic of its own, then audits
 * it against an empty namespace of its own (no processor runs: writing a million records through the
 * stores would load a shared stack for long, and the audit's cost is reading the topic and recomputing).
 * Every store object it made is removed at the end (`--keep` keeps them; `--id ID` audits the topic of a
 * kept run again instead of producing one, and keeps it: producing a million records again takes minutes). Not a test: it prints what this machine does.
 *
 * Servers: KAFKA_BROKERS, MONGODB_URI and CLICKHOUSE_URL when set, else the local stack's addresses
 * (deploy/local: AGENTMETER_KAFKA_PORT, AGENTMETER_MONGO_PORT, AGENTMETER_CLICKHOUSE_HTTP_PORT).
 */
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { endpointsOf, loadStackConfig } from "../deploy/local/stack-config.ts";
import { reportJson } from "../pipeline/audit/report.ts";
import { runAudit } from "../pipeline/audit/run-audit.ts";
import { auditWorkersSchema } from "../pipeline/audit/workers.ts";
import { progressPrinter } from "../pipeline/cli/audit.ts";
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
  options: {
    records: { type: "string", default: "1000000" },
    workers: { type: "string", default: "1,2" },
    id: { type: "string" },
    keep: { type: "boolean" },
  },
});
const total = Number(values.records);
if (!Number.isSafeInteger(total) || total <= 0) {
  process.stderr.write(`bench:audit: --records must be a positive integer, got '${values.records}'\n`);
  process.exit(2);
}
const workerCounts = values.workers.split(",").map((text) => {
  const parsed = auditWorkersSchema.safeParse(text.trim());
  if (!parsed.success) {
    process.stderr.write(`bench:audit: --workers '${text}': ${parsed.error.issues[0]?.message}\n`);
    process.exit(2);
  }
  return parsed.data;
});
if (values.id !== undefined && !/^bench_audit_[a-z0-9_]+$/.test(values.id)) {
  process.stderr.write(`bench:audit: --id '${values.id}' is not the id of a kept bench:audit run\n`);
  process.exit(2);
}

const stack = endpointsOf(loadStackConfig(process.env));
// A kept topic brought back by --id stays kept: a second --id run must find it.
const keep = values.keep === true || values.id !== undefined;
const id = values.id ?? `bench_audit_${Date.now().toString(36)}_${randomBytes(3).toString("hex")}`;
const config = loadConfig({
  ...process.env,
  KAFKA_BROKERS: process.env.KAFKA_BROKERS || stack.kafkaBrokers.join(","),
  MONGODB_URI: process.env.MONGODB_URI || stack.mongoUri,
  CLICKHOUSE_URL: process.env.CLICKHOUSE_URL || stack.clickhouseUrl,
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
const perSecond = (count: number, ms: number) => Math.round(count / (ms / 1000));

/**
 * CPU seconds of the main thread so far (Linux /proc; undefined elsewhere): reading Kafka, handing the
 * batches over, merging, diffing. The rest of the process's CPU is the other threads: the audit's
 * workers, and V8's and libuv's helpers (garbage collection, compilation, I/O), which Node does not name.
 */
function mainThreadCpu(): number | undefined {
  try {
    const stat = readFileSync(`/proc/self/task/${process.pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat, in clock ticks (100 a second on Linux).
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

interface Run {
  workers: number;
  records: number;
  readMs: number;
  auditMs: number;
  cpuMs: number;
  /** CPU seconds of the main thread, when known. */
  mainCpu: number | undefined;
  sha256: string;
  differences: number;
}

async function audit(workers: number): Promise<Run> {
  const started = Date.now();
  // CPU time as well as wall time: on a shared 2-core box the wall rate says as much about the neighbours.
  const cpuStart = process.cpuUsage();
  const mainBefore = mainThreadCpu();
  let readDoneAt = 0;
  const print = progressPrinter({ stderr: process.stderr }, `audit (${workers} workers)`, 2_000);
  const report = await runAudit({
    config,
    billing: loadBillingConfig(config),
    range: { kind: "all" },
    logger,
    workers,
    onProgress: (progress) => {
      if (progress.done === true) readDoneAt = Date.now();
      print(progress);
    },
  });
  const auditMs = Date.now() - started;
  const cpu = process.cpuUsage(cpuStart);
  const mainAfter = mainThreadCpu();
  const cpuMs = (cpu.user + cpu.system) / 1000;
  return {
    workers,
    records: report.counts.records,
    readMs: (readDoneAt || Date.now()) - started,
    auditMs,
    cpuMs,
    mainCpu: mainBefore === undefined || mainAfter === undefined ? undefined : mainAfter - mainBefore,
    sha256: createHash("sha256").update(reportJson(report)).digest("hex"),
    differences: report.differences.length,
  };
}

try {
  await admin.connect();
  if (values.id === undefined) {
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
      `produced ${total} records to ${config.AGENTMETER_INPUT_TOPIC} in ${seconds(produceMs)} s (${perSecond(total, produceMs)}/s)\n`,
    );
  } else {
    process.stdout.write(`auditing the kept topic ${config.AGENTMETER_INPUT_TOPIC} again\n`);
  }

  const runs: Run[] = [];
  for (const workers of workerCounts) {
    const run = await audit(workers);
    runs.push(run);
    const where =
      run.mainCpu === undefined
        ? ""
        : ` (main thread ${run.mainCpu.toFixed(1)} s, other threads: workers, GC, I/O ${(run.cpuMs / 1000 - run.mainCpu).toFixed(1)} s)`;
    process.stdout.write(
      [
        `audit with ${workers} worker thread(s)${workers === 0 ? " (recompute in the main thread)" : ""}: ${run.records} records`,
        `  read + recompute: ${seconds(run.readMs)} s, ${perSecond(run.records, run.readMs)} records/s`,
        `  whole audit (incl. reading the stores and diffing): ${seconds(run.auditMs)} s, ${perSecond(run.records, run.auditMs)} records/s`,
        `  CPU time of the audit process: ${seconds(run.cpuMs)} s, ${perSecond(run.records, run.cpuMs)} records per CPU-second${where}`,
        `  report sha256 ${run.sha256} (the namespace is empty on purpose: ${run.differences} differences)`,
        "",
      ].join("\n"),
    );
  }
  // The process's peak over the whole run (every audit of the list, workers' heaps included).
  process.stdout.write(`peak RSS of this process: ${Math.round(process.resourceUsage().maxRSS / 1024)} MB\n`);
  if (runs.length > 1) {
    const same = runs.every((run) => run.sha256 === runs[0]!.sha256);
    process.stdout.write(
      `reports of ${runs.map((run) => run.workers).join(", ")} worker(s): ${same ? "byte-identical" : "DIFFERENT"}\n`,
    );
    if (!same) process.exitCode = 1;
  }
} finally {
  await admin.disconnect();
  await clickhouse.close();
  if (keep) process.stdout.write(`kept: --id ${id}\n`);
  else await dropNamespaces([config]);
}
