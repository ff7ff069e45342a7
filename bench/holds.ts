/**
 * `npm run bench:holds` (not a test): how fast a hold is decided over Kafka. At each steady rate of
 * holds, reserve -> decision latency as the SDK sees it (the hold record sent, the processor's decision
 * read back from the holds topic), while every granted hold is settled with a usage record, so usage flows
 * at the same rate; beside it, in the same run, produce -> budget state of plain usage records (a probe
 * every 100 ms, awaited in the SDK's budget view). The processor runs as its own OS process, as in
 * production, so the client's work does not share its event loop.
 * BENCH_HOLD_RATES (100,1000,5000), BENCH_SECONDS (20 per rate), BENCH_ACCOUNTS (1,000) choose. Before each rate
 * sends, it waits for ClickHouse to finish merging (at most 90 s).
 * BENCH_TRACE=1 also splits each decision's time into legs (LegTracer); its two consumers cost the
 * client a fifth of a core at 1,000 holds/s, so it is off by default. Every run prints the CPU of each
 * process on the machine while sending.
 *
 * Each rate works in a namespace of its own, removed at the end unless BENCH_KEEP=1.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { createWriteStream, mkdirSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { Consumer } from "kafkajs";
import { type Config, configEnv } from "../pipeline/config.ts";
import { parseBillingConfig } from "../pipeline/core/index.ts";
import { isAgentmeterError } from "../pipeline/errors.ts";
import { createKafka } from "../pipeline/kafka.ts";
import { createLogger } from "../pipeline/log.ts";
import { Agentmeter } from "../sdk/index.ts";
import { dropNamespaces, keepData } from "./cleanup.ts";
import { benchNamespace, benchServers } from "./namespace.ts";
import { allProcessesCpu, processCpu } from "./proc-cpu.ts";

const RATES = (process.env.BENCH_HOLD_RATES ?? "100,1000,5000").split(",").map(Number);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const ACCOUNTS = Number(process.env.BENCH_ACCOUNTS ?? 1_000);
const TRACE = process.env.BENCH_TRACE === "1";
const PROBES = 20;
const HOLD_TOKENS = 1_000;
const PROBE_TOKENS = 10;
// A trial no run can use up: every hold is decided on its merits, and the probes' arithmetic stays simple.
const TRIAL = 1_000_000_000;
const WORK_DIR = join(process.cwd(), ".agentmeter", "bench-holds");

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "-");

function quantiles(values: number[]) {
  const sorted = [...values].sort((x, y) => x - y);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
  return { n: sorted.length, p50: at(0.5), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/** The processor as an OS process with the namespace's configuration; resolves once it has joined. */
async function startProcessor(config: Config, name: string): Promise<ChildProcess> {
  mkdirSync(WORK_DIR, { recursive: true });
  const log = createWriteStream(join(WORK_DIR, `${name}.log`));
  // BENCH_PROCESSOR_NODE_ARGS: e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the processor alone.
  const nodeArgs = process.env.BENCH_PROCESSOR_NODE_ARGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...nodeArgs, "--import", "tsx", "pipeline/processor/main.ts"], {
    env: { ...process.env, ...configEnv(config), LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  await new Promise<void>((resolve, reject) => {
    let seen = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      seen = (seen + chunk.toString("utf8")).slice(-4096);
      if (seen.includes('"msg":"processor started"')) resolve();
    });
    child.on("exit", (code) =>
      reject(new Error(`processor exited (${code}) before it started: see ${log.path}`)),
    );
  });
  return child;
}

/** CPU seconds of a process so far (user + system). */
function cpuSeconds(pid: number): number {
  return processCpu(pid)?.seconds ?? 0;
}

/** CPU seconds so far of every process on the machine, grouped: the stores, Kafka, this bench, the processor. */
function machineCpu(processorPid: number): Map<string, number> {
  const groups = new Map<string, number>();
  for (const { pid, name, seconds } of allProcessesCpu()) {
    const group =
      pid === processorPid
        ? "processor"
        : pid === process.pid
          ? "bench client"
          : name.startsWith("chdb") || name.startsWith("clickhouse")
            ? "clickhouse"
            : name === "java"
              ? "kafka"
              : name === "ferretdb" || name === "postgres"
                ? name
                : "other";
    groups.set(group, (groups.get(group) ?? 0) + seconds);
  }
  return groups;
}

function cpuShares(before: Map<string, number>, after: Map<string, number>, seconds: number): string {
  return [...after]
    .map(([group, cpu]) => [group, (cpu - (before.get(group) ?? 0)) / seconds] as const)
    .filter(([, share]) => share >= 0.005)
    .sort((x, y) => y[1] - x[1])
    .map(([group, share]) => `${group} ${Math.round(share * 100)}%`)
    .join(", ");
}

/**
 * Waits (at most QUIET_MAX_S) until ClickHouse uses under a tenth of a core over two seconds: after a
 * stack starts, and after a run's inserts, it merges parts for a while at up to 77% of a core, and figures
 * taken then are worse (docs/holds.md). Returns the seconds waited.
 */
const QUIET_MAX_S = 90;
async function waitForQuietClickHouse(): Promise<number> {
  const started = performance.now();
  for (;;) {
    const before = machineCpu(0).get("clickhouse") ?? 0;
    await sleep(2_000);
    const share = ((machineCpu(0).get("clickhouse") ?? 0) - before) / 2;
    const waited = (performance.now() - started) / 1000;
    if (share < 0.1 || waited >= QUIET_MAX_S) return waited;
  }
}

/** A TCP port nothing listens on now (the processor's metrics endpoint takes it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(),
      );
    });
  });
}

/**
 * What the processor's metrics say (its /metrics endpoint): the event-loop delay since the previous
 * scrape (prom-client's default gauges, from monitorEventLoopDelay at 10 ms resolution, reset by each
 * scrape), in ms, and its write-behind cycles so far (count and seconds, summed over partitions). A
 * decision waits behind whatever else the loop runs: the cycles' store writes and rows, Kafka I/O.
 */
async function scrapeProcessor(port: number) {
  const lines = (await (await fetch(`http://127.0.0.1:${port}/metrics`)).text()).split("\n");
  const sum = (name: string) =>
    lines
      .filter((line) => line.startsWith(`${name} `) || line.startsWith(`${name}{`))
      .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(" ") + 1)), 0);
  return {
    loop: {
      p50: sum("nodejs_eventloop_lag_p50_seconds") * 1000,
      p99: sum("nodejs_eventloop_lag_p99_seconds") * 1000,
      max: sum("nodejs_eventloop_lag_max_seconds") * 1000,
    },
    cycles: sum("agentmeter_write_behind_cycle_duration_seconds_count"),
    cycleSeconds: sum("agentmeter_write_behind_cycle_duration_seconds_sum"),
  };
}

function appIds(account: number) {
  const app = account % 10;
  return {
    level: "app_usage" as const,
    enterprise_id: `bench-holds-app-${app}`,
    mozaiks_user_id: `bench-holds-creator-${app}`,
    platform_user_id: `user-${account}`,
  };
}

function probeIds(probe: number) {
  return {
    level: "app_usage" as const,
    enterprise_id: "bench-holds-probes",
    mozaiks_user_id: "bench-holds-creator-probes",
    platform_user_id: `probe-${probe}`,
  };
}

function usage(chat: string, tokens: number) {
  return {
    workflow_type: "chat_interaction" as const,
    workflow_name: "bench",
    session_id: `s-${chat}`,
    chat_id: chat,
    agent_usage: {
      BenchAgent: {
        prompt_tokens: tokens - Math.floor(tokens / 4),
        completion_tokens: Math.floor(tokens / 4),
      },
    },
    occurred_at: new Date().toISOString(),
  };
}

/**
 * Where a decision's time goes, from the Kafka timestamps (CreateTime: the sending client's clock, the
 * same machine's): the SDK's send (reserve called -> hold record stamped), the processor (hold record
 * stamped -> decision stamped: broker append, fetch, plan, publish call), and the way back (decision
 * stamped -> heard by a plain consumer of the holds topic, which reads like the SDK does).
 */
class LegTracer {
  private readonly called = new Map<string, number>();
  private readonly holdStamp = new Map<string, number>();
  private readonly decisionStamp = new Map<string, number>();
  private readonly decisionHeard = new Map<string, number>();
  private readonly consumers: Consumer[] = [];

  async start(config: Config): Promise<void> {
    const kafka = createKafka(config, createLogger("warn", "bench-tracer"));
    const trace = async (topic: string, onMessage: (holdId: string, stampMs: number) => void) => {
      const consumer = kafka.consumer({
        groupId: `${config.AGENTMETER_GROUP_ID}-trace-${randomUUID()}`,
        maxWaitTimeInMs: 50,
      });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: false });
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ message }) => {
          const text = message.value?.toString("utf8") ?? "";
          const match = /"hold_id":"([^"]+)"/.exec(text);
          if (match?.[1] !== undefined) onMessage(match[1], Number(message.timestamp));
        },
      });
      this.consumers.push(consumer);
    };
    await trace(config.AGENTMETER_INPUT_TOPIC, (id, stamp) => {
      if (!this.holdStamp.has(id)) this.holdStamp.set(id, stamp);
    });
    await trace(config.AGENTMETER_HOLDS_TOPIC, (id, stamp) => {
      if (this.decisionStamp.has(id)) return;
      this.decisionStamp.set(id, stamp);
      this.decisionHeard.set(id, Date.now());
    });
  }

  reserved(holdId: string): void {
    this.called.set(holdId, Date.now());
  }

  legs() {
    const send: number[] = [];
    const processor: number[] = [];
    const back: number[] = [];
    for (const [id, called] of this.called) {
      const hold = this.holdStamp.get(id);
      const decision = this.decisionStamp.get(id);
      const heard = this.decisionHeard.get(id);
      if (hold === undefined || decision === undefined || heard === undefined) continue;
      send.push(hold - called);
      processor.push(decision - hold);
      back.push(heard - decision);
    }
    return { send: quantiles(send), processor: quantiles(processor), back: quantiles(back) };
  }

  async stop(): Promise<void> {
    await Promise.all(this.consumers.map((consumer) => consumer.disconnect().catch(() => undefined)));
  }
}

async function run(servers: Awaited<ReturnType<typeof benchServers>>, rate: number, billingFile: string) {
  const metricsPort = await freePort();
  const config = benchNamespace(servers, `holds${rate}`, {
    AGENTMETER_BILLING_CONFIG: billingFile,
    AGENTMETER_METRICS_PORT: String(metricsPort),
    AGENTMETER_METRICS_HOST: "127.0.0.1",
    // The processor's cycle pacing, to compare settings on one machine (docs/holds.md).
    AGENTMETER_MIN_CYCLE_INTERVAL_MS: process.env.AGENTMETER_MIN_CYCLE_INTERVAL_MS,
  });
  const namespaces = [config];
  const processor = await startProcessor(config, `processor-${rate}`);
  const meter = await Agentmeter.connect({
    config,
    billing: parseBillingConfig({ app_trial_tokens: { default: TRIAL } }),
  });
  const tracer = TRACE ? new LegTracer() : undefined;
  await tracer?.start(config);
  try {
    const reserve = (account: number, traced = false) => {
      const ids = appIds(account);
      const chat = `c-${account}`;
      const holdId = randomUUID();
      if (traced) tracer?.reserved(holdId);
      return meter
        .reserve({ ...ids, chat_id: chat, hold_id: holdId, tokens: HOLD_TOKENS, timeout_ms: 30_000 })
        .then(async (hold) => {
          if (hold.granted) await meter.settle(hold.hold_id, { ...ids, ...usage(chat, 600) });
          return hold;
        });
    };
    // Warm: every account decided once (loaded into the processor's memory), every probe account used once.
    for (let from = 0; from < ACCOUNTS; from += 200)
      await Promise.all(Array.from({ length: Math.min(200, ACCOUNTS - from) }, (_, i) => reserve(from + i)));
    const probesSent = new Array<number>(PROBES).fill(0);
    const probe = async (k: number): Promise<number> => {
      const ids = probeIds(k);
      probesSent[k] = (probesSent[k] ?? 0) + 1;
      const expected = TRIAL - PROBE_TOKENS * (probesSent[k] ?? 0);
      const started = performance.now();
      await meter.send({ type: "usage", ...ids, ...usage(`probe-${k}`, PROBE_TOKENS) });
      await meter.waitForBudget(ids, (state) => state.available_tokens <= expected, 60_000);
      return performance.now() - started;
    };
    await Promise.all(Array.from({ length: PROBES }, (_, k) => probe(k)));
    const settledSeconds = await waitForQuietClickHouse();

    const decided: number[] = [];
    const budgetLatency: number[] = [];
    let granted = 0;
    let denied = 0;
    let timeouts = 0;
    let failed = 0;
    const pending: Promise<unknown>[] = [];
    const cpuBefore = cpuSeconds(processor.pid ?? 0);
    const machineBefore = machineCpu(processor.pid ?? 0);
    // Resets the event-loop window: only the sending is measured.
    const metricsBefore = await scrapeProcessor(metricsPort);
    const tickMs = 10;
    const perTick = rate / (1000 / tickMs);
    const ticks = (SECONDS * 1000) / tickMs;
    const started = performance.now();
    let owed = 0;
    for (let tick = 0; tick < ticks; tick++) {
      owed += perTick;
      for (; owed >= 1; owed--) {
        const at = performance.now();
        pending.push(
          reserve(Math.floor(Math.random() * ACCOUNTS), true).then(
            (hold) => {
              decided.push(performance.now() - at);
              if (hold.granted) granted++;
              else denied++;
            },
            (error: unknown) => {
              if (isAgentmeterError(error, "HOLD_TIMEOUT")) timeouts++;
              else failed++;
            },
          ),
        );
      }
      if (tick % (100 / tickMs) === 0)
        pending.push(probe((tick / (100 / tickMs)) % PROBES).then((ms) => budgetLatency.push(ms)));
      const next = started + (tick + 1) * tickMs;
      const wait = next - performance.now();
      if (wait > 0) await sleep(wait);
    }
    const sendSeconds = (performance.now() - started) / 1000;
    const cores = cpuShares(machineBefore, machineCpu(processor.pid ?? 0), sendSeconds);
    const metricsAfter = await scrapeProcessor(metricsPort);
    const loop = metricsAfter.loop;
    const cycles = metricsAfter.cycles - metricsBefore.cycles;
    const cycleMs = ((metricsAfter.cycleSeconds - metricsBefore.cycleSeconds) * 1000) / Math.max(1, cycles);
    await Promise.allSettled(pending);
    await meter.flush();
    const cpu = cpuSeconds(processor.pid ?? 0) - cpuBefore;
    return {
      rate,
      achieved: (granted + denied + timeouts + failed) / sendSeconds,
      decision: quantiles(decided),
      budget: quantiles(budgetLatency),
      granted,
      denied,
      timeouts,
      failed,
      cpuMsPerHold: (cpu * 1000) / Math.max(1, granted + denied),
      legs: tracer?.legs(),
      cores,
      loop,
      cycles: cycles / sendSeconds,
      cycleMs,
      settledSeconds,
    };
  } finally {
    await tracer?.stop();
    await meter.close().catch(() => undefined);
    processor.kill("SIGTERM");
    await new Promise((resolve) => processor.once("exit", resolve));
    if (!keepData()) await dropNamespaces(namespaces);
  }
}

const leg = (q: ReturnType<typeof quantiles>) => `${fmt(q.p50)} / ${fmt(q.p99)} ms`;

async function main(): Promise<void> {
  mkdirSync(WORK_DIR, { recursive: true });
  const billingFile = join(WORK_DIR, "billing.json");
  writeFileSync(billingFile, JSON.stringify({ app_trial_tokens: { default: TRIAL } }));
  const servers = await benchServers();
  console.log(
    `bench:holds: ${ACCOUNTS} accounts, ${SECONDS} s per rate, each granted hold settled by a usage record; processor as its own process`,
  );
  for (const rate of RATES) {
    const r = await run(servers, rate, billingFile);
    console.log(
      `at ${fmt(rate)} holds/s (sent ${fmt(r.achieved)}/s): reserve -> decision p50 ${fmt(r.decision.p50)} ms, p99 ${fmt(r.decision.p99)} ms, max ${fmt(r.decision.max)} ms ` +
        `(${fmt(r.decision.n)} decided: ${fmt(r.granted)} granted, ${fmt(r.denied)} denied; ${r.timeouts} timed out, ${r.failed} failed)\n` +
        `  same run, plain usage: produce -> budget state in the SDK's view p50 ${fmt(r.budget.p50)} ms, p99 ${fmt(r.budget.p99)} ms (${r.budget.n} probes); ` +
        `processor CPU ${r.cpuMsPerHold.toFixed(3)} ms per hold (reserve + settle); ` +
        `processor event-loop delay p50 ${fmt(r.loop.p50)} ms, p99 ${fmt(r.loop.p99)} ms, max ${fmt(r.loop.max)} ms; ` +
        `write-behind cycles ${r.cycles.toFixed(1)}/s (all partitions), ${fmt(r.cycleMs)} ms each on average\n` +
        (r.legs === undefined
          ? ""
          : `  where the time goes (p50 / p99, from Kafka timestamps, ${fmt(r.legs.send.n)} holds): SDK send ${leg(r.legs.send)}, ` +
            `hold record -> decision published ${leg(r.legs.processor)}, decision -> heard ${leg(r.legs.back)}\n`) +
        `  CPU while sending (share of one core; the machine has ${availableParallelism()}; ClickHouse settled first in ${fmt(r.settledSeconds)} s): ${r.cores}`,
    );
  }
}

await main();
