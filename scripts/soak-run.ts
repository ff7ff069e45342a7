/**
 * The nemesis soak (issue 13): a stack of its own on ports of its own, processors and a producer as
 * child processes, a seeded schedule of faults injected while the producer sends at a steady rate, then
 * the verdict of scripts/soak-checks.ts once the group's lag is zero. `npm run soak` (scripts/soak.ts)
 * and test/int/soak.int.test.ts both call runSoak.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import type { Admin, Kafka } from "kafkajs";
import { readPidRecord, stopGroup } from "../deploy/local/process.ts";
import { pidPath, type ServiceName } from "../deploy/local/service.ts";
import {
  loadStackConfig,
  type StackConfig,
  type StackEndpoints,
  stackDown,
  stackUp,
} from "../deploy/local/stack.ts";
import { type Config, loadConfig } from "../pipeline/config.ts";
import { createKafka } from "../pipeline/kafka.ts";
import { createLogger, type Logger } from "../pipeline/log.ts";
import { consumerLag } from "../pipeline/ops/metrics.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";
import { prng } from "../pipeline/simulate/workload.ts";
import { AgentmeterError } from "../schemas/errors.ts";
import { runChecks, type Verdict } from "./soak-checks.ts";
import { eventTimes, FAULT_KINDS, type FaultKind, type SoakPlan, shapeOf } from "./soak-stream.ts";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
/** `npm run soak` and the test each have a stack of their own, so one never stops the other's servers. */
export type SoakStack = "cli" | "test";
export function soakHome(which: SoakStack = "cli"): string {
  return path.join(REPO, ".agentmeter", which === "cli" ? "soak" : "soak-test");
}

export interface SoakOptions {
  records: number;
  accounts: number;
  durationS: number;
  seed: number;
  faults: FaultKind[];
  brokers: 1 | 3;
  /** Processors at start (2 or 3). */
  processors?: number;
  /** Which soak stack: `npm run soak`'s (default) or the test's, 100 ports higher. */
  stack?: SoakStack;
}

export interface FaultRecord {
  kind: FaultKind;
  target: string;
  /** Seconds since the soak started. */
  at: number;
  /** Seconds the fault lasted (from injection to the restart or resume being done). */
  lasted: number;
  lagBefore: number | null;
  /** Fault end → first lag sample back at or under lagBefore; null when not within the bound. */
  recoveryS: number | null;
  note?: string;
}

export interface SoakReport {
  plan: SoakPlan;
  stack: SoakStack;
  schedule: { kind: FaultKind; downS: number }[];
  faults: FaultRecord[];
  findings: string[];
  seconds: { produce: number; drain: number; total: number };
  recordsPerSecond: number;
  peakProcessorRssMb: number;
  verdict: Verdict | undefined;
  ok: boolean;
}

/**
 * Every port of the shared stack moved: the soak never touches what other engineers' tests use. All of
 * them below 32768, out of Linux's ephemeral range (32768-60999): a port in it may be held for minutes by
 * some client connection's local end, and the stack refuses to start on a taken port (CI saw 39100 so).
 */
export function soakStackConfig(brokers: 1 | 3, which: SoakStack = "cli"): StackConfig {
  const shift = which === "cli" ? 0 : 100;
  return loadStackConfig({
    ...process.env,
    AGENTMETER_HOME: soakHome(which),
    AGENTMETER_KAFKA_PORT: String(24092 + shift),
    AGENTMETER_KAFKA_CONTROLLER_PORT: String(24093 + shift),
    AGENTMETER_CLICKHOUSE_HTTP_PORT: String(24123 + shift),
    AGENTMETER_CLICKHOUSE_TCP_PORT: String(24000 + shift),
    AGENTMETER_MONGO_PORT: String(24117 + shift),
    AGENTMETER_PG_PORT: String(24433 + shift),
    AGENTMETER_KAFKA_NODES: String(brokers),
  });
}

/** How many of each fault a run of this length gets: one each for a short run; the long run's 20+ kills. */
export function scheduleOf(options: SoakOptions): { kind: FaultKind; downS: number }[] {
  const random = prng(options.seed ^ 0xfa17);
  const long = options.durationS >= 600;
  const list: { kind: FaultKind; downS: number }[] = [];
  for (const kind of options.faults) {
    const count =
      kind === "processor-kill" && long
        ? Math.max(20, Math.floor(options.durationS / 90))
        : long
          ? Math.max(1, Math.floor(options.durationS / 1_200))
          : 1;
    const downS =
      kind === "mongo-kill" || kind === "clickhouse-down"
        ? long
          ? 60
          : 30
        : kind === "mongo-stall"
          ? 30
          : kind === "broker-kill"
            ? 5
            : 2;
    for (let i = 0; i < count; i++) list.push({ kind, downS });
  }
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
  // The producer is killed while it still has records to send: first or second, since every fault before
  // it waits for its recovery and a short run's producer may otherwise be done by then.
  const producer = list.findIndex((fault) => fault.kind === "producer-kill");
  if (producer > 1) {
    const [fault] = list.splice(producer, 1);
    list.splice(Math.floor(random() * 2), 0, fault!);
  }
  return list;
}

interface Child {
  name: string;
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  started: Promise<void>;
  port: number;
}

function spawnChild(
  name: string,
  script: string,
  env: Record<string, string>,
  logDir: string,
  startedLine: string,
  port = 0,
): Child {
  const log = createWriteStream(path.join(logDir, `${name}.log`), { flags: "a" });
  const child = spawn(process.execPath, ["--import", "tsx", script], {
    cwd: REPO,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const started = new Promise<void>((resolve) => {
    let seen = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      seen = (seen + chunk.toString("utf8")).slice(-4096);
      if (seen.includes(startedLine)) resolve();
    });
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => resolve({ code, signal })),
  );
  return { name, child, exited, started, port };
}

function alive(child: Child): boolean {
  return child.child.exitCode === null && child.child.signalCode === null;
}

async function within<T>(what: string, ms: number, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new AgentmeterError("SERVICE_UNAVAILABLE", `${what}: not within ${ms / 1000} s`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function rssMb(pid: number | undefined): number {
  if (pid === undefined) return 0;
  try {
    const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1];
    return kb === undefined ? 0 : Number(kb) / 1024;
  } catch {
    return 0;
  }
}

/** A soak's state while it runs: children, lag samples, findings. */
class Soak {
  readonly processors = new Map<string, Child>();
  producer: Child | undefined;
  producerIncarnation = 0;
  producerDone = false;
  readonly samples: { t: number; lag: number | null }[] = [];
  readonly findings: string[] = [];
  peakRssMb = 0;
  private admin: Admin | undefined;
  private nextProcessor = 0;
  private readonly started = Date.now();

  constructor(
    readonly plan: SoakPlan,
    readonly stack: StackConfig,
    readonly env: Record<string, string>,
    readonly config: Config,
    readonly kafka: Kafka,
    readonly runDir: string,
    readonly logger: Logger,
  ) {}

  seconds(): number {
    return (Date.now() - this.started) / 1000;
  }

  /** Set by close(): an interrupted run's fault still in flight must not start children after it. */
  private closed = false;

  private refuseWhenClosed(what: string): void {
    if (this.closed) throw new AgentmeterError("SERVICE_UNAVAILABLE", `soak closed: not starting ${what}`);
  }

  async spawnProcessor(): Promise<Child> {
    this.refuseWhenClosed("a processor");
    const used = new Set([...this.processors.values()].map((p) => p.port));
    let port = this.stack.kafkaPort + 372;
    while (used.has(port)) port++;
    const name = `processor-${this.nextProcessor++}`;
    const child = spawnChild(
      name,
      "pipeline/processor/main.ts",
      { ...this.env, AGENTMETER_METRICS_PORT: String(port), AGENTMETER_METRICS_HOST: "127.0.0.1" },
      path.join(this.runDir, "logs"),
      '"msg":"processor started"',
      port,
    );
    this.processors.set(name, child);
    void child.exited.then(({ code, signal }) => {
      if (this.processors.get(name) === child) {
        this.processors.delete(name);
        this.findings.push(
          `${name} exited by itself (code ${code}, signal ${signal}) at ${this.seconds().toFixed(0)} s`,
        );
      }
    });
    await within(
      `${name} start`,
      120_000,
      Promise.race([
        child.started,
        child.exited.then(() => {
          throw new AgentmeterError("SERVICE_START_FAILED", `${name} exited during start (logs/${name}.log)`);
        }),
      ]),
    );
    return child;
  }

  /** Stops one processor by the soak's own handle on it (never by name): the nemesis' signal. */
  async stopProcessor(
    child: Child,
    signal: NodeJS.Signals,
  ): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    this.processors.delete(child.name);
    if (alive(child)) child.child.kill(signal);
    try {
      return await within(`${child.name} exit on ${signal}`, 60_000, child.exited);
    } catch (error) {
      this.findings.push(
        `${child.name} did not exit within 60 s of ${signal}; SIGKILLed (logs/${child.name}.log)`,
      );
      child.child.kill("SIGKILL");
      await child.exited;
      throw error;
    }
  }

  startProducer(): Child {
    this.refuseWhenClosed("the producer");
    const incarnation = this.producerIncarnation++;
    const child = spawnChild(
      `producer-${incarnation}`,
      "scripts/soak-producer.ts",
      {
        ...this.env,
        SOAK_PLAN: path.join(this.runDir, "plan.json"),
        SOAK_ACKS: path.join(this.runDir, "acks.txt"),
        SOAK_INCARNATION: String(incarnation),
      },
      path.join(this.runDir, "logs"),
      '"msg":"producer started"',
    );
    this.producer = child;
    void child.exited.then(({ code, signal }) => {
      if (this.producer !== child) return;
      if (code === 0) this.producerDone = true;
      else {
        this.findings.push(
          `producer-${incarnation} exited by itself (code ${code}, signal ${signal}); restarted`,
        );
        if (this.producerIncarnation < 10) setTimeout(() => this.startProducer(), 2_000);
      }
    });
    return child;
  }

  async lag(): Promise<number | null> {
    try {
      if (this.admin === undefined) {
        this.admin = this.kafka.admin();
        await this.admin.connect();
      }
      const topic = this.config.AGENTMETER_INPUT_TOPIC;
      const [ends, committed] = await within(
        "lag",
        5_000,
        Promise.all([
          this.admin.fetchTopicOffsets(topic),
          this.admin.fetchOffsets({ groupId: this.config.AGENTMETER_GROUP_ID, topics: [topic] }),
        ]),
      );
      let lag = 0;
      for (const records of consumerLag(ends, committed[0]?.partitions ?? []).values())
        lag += Number(records);
      return lag;
    } catch {
      // A broker down: the next sample makes a new client.
      const admin = this.admin;
      this.admin = undefined;
      await admin?.disconnect().catch(() => undefined);
      return null;
    }
  }

  /** Samples lag and processor memory once a second until `stop` resolves. */
  async sample(stop: { done: boolean }): Promise<void> {
    while (!stop.done) {
      const lag = await this.lag();
      this.samples.push({ t: this.seconds(), lag });
      for (const p of this.processors.values()) this.peakRssMb = Math.max(this.peakRssMb, rssMb(p.child.pid));
      await sleep(1_000);
    }
  }

  lagBefore(at: number): number | null {
    const window = this.samples.filter((s) => s.t >= at - 10 && s.t <= at && s.lag !== null);
    return window.length === 0 ? null : Math.max(...window.map((s) => s.lag!));
  }

  /** Waits until the lag is back at or under `level` (bounded); the seconds since `end`, or null. */
  async recovery(end: number, level: number | null, boundS: number): Promise<number | null> {
    const deadline = Date.now() + boundS * 1_000;
    while (Date.now() < deadline) {
      const back = this.samples.find(
        (s) => s.t >= end && s.lag !== null && (level === null || s.lag <= level),
      );
      if (back !== undefined) return Math.max(0, back.t - end);
      await sleep(500);
    }
    return null;
  }

  async servicePid(name: ServiceName): Promise<number> {
    const record = await readPidRecord(pidPath(this.stack, name));
    if (record === undefined)
      throw new AgentmeterError("SERVICE_UNAVAILABLE", `${name}: no pid file in the soak stack`);
    return record.pid;
  }

  /**
   * Starts the named services of the soak stack again, only those: a whole-stack `stackUp` first waits for
   * every running service to be ready, and FerretDB is not ready while its PostgreSQL is down, so it would
   * time out before restarting PostgreSQL (the finding in docs/reliability.md). Bounded: three tries.
   */
  async restart(only: ServiceName[]): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        await within(
          `restart ${only}`,
          180_000,
          stackUp({ config: this.stack, only, log: (line) => this.logger.info(line) }),
        );
        return;
      } catch (error) {
        this.findings.push(
          `restart of ${only} failed (try ${attempt}): ${(error as Error).message.split("\n")[0]}`,
        );
        if (attempt >= 3) throw error;
        await sleep(2_000);
      }
    }
  }

  /** One fault: injected, healed; returns what it targeted and a note. */
  async inject(
    kind: FaultKind,
    downS: number,
    random: () => number,
  ): Promise<{ target: string; note?: string }> {
    const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
    switch (kind) {
      case "processor-kill":
      case "processor-term": {
        const victim = pick([...this.processors.values()]);
        if (victim === undefined) return { target: "none", note: "no processor running" };
        const signal = kind === "processor-kill" ? "SIGKILL" : "SIGTERM";
        const exit = await this.stopProcessor(victim, signal);
        if (signal === "SIGTERM" && exit.code !== 0)
          this.findings.push(`${victim.name} exited ${exit.code}/${exit.signal} on SIGTERM (expected 0)`);
        await sleep(downS * 1_000);
        const next = await this.spawnProcessor();
        return {
          target: `${victim.name} → ${next.name}`,
          note: signal === "SIGTERM" ? `exit ${exit.code}` : undefined,
        };
      }
      case "processor-join": {
        if (this.processors.size >= 4) {
          const leaving = pick([...this.processors.values()]);
          await this.stopProcessor(leaving, "SIGTERM");
        }
        const next = await this.spawnProcessor();
        return { target: next.name };
      }
      case "broker-kill": {
        const node = this.plan.brokers === 3 ? pick(["kafka", "kafka-2", "kafka-3"] as const) : "kafka";
        await stopGroup(await this.servicePid(node), "SIGKILL", 10_000);
        await sleep(downS * 1_000);
        await this.restart([node]);
        return { target: node };
      }
      case "mongo-kill":
      case "clickhouse-down": {
        const service = kind === "mongo-kill" ? "ferretdb" : "clickhouse";
        await stopGroup(await this.servicePid(service), "SIGKILL", 10_000);
        await sleep(downS * 1_000);
        await this.restart([service]);
        return { target: service };
      }
      case "postgres-restart": {
        // SIGINT: PostgreSQL's fast shutdown, a restart as an operator does it, under a running FerretDB.
        await stopGroup(await this.servicePid("postgres"), "SIGINT", 30_000);
        await sleep(downS * 1_000);
        await this.restart(["postgres"]);
        return { target: "postgres" };
      }
      case "mongo-stall": {
        const pid = await this.servicePid("ferretdb");
        process.kill(-pid, "SIGSTOP");
        try {
          await sleep(downS * 1_000);
        } finally {
          process.kill(-pid, "SIGCONT");
        }
        return { target: "ferretdb" };
      }
      case "producer-kill": {
        const producer = this.producer;
        if (producer === undefined || this.producerDone || !alive(producer))
          return { target: "none", note: "the producer had finished" };
        this.producer = undefined;
        producer.child.kill("SIGKILL");
        await producer.exited;
        await sleep(downS * 1_000);
        const next = this.startProducer();
        return { target: `${producer.name} → ${next.name}` };
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.admin?.disconnect().catch(() => undefined);
    const producer = this.producer;
    this.producer = undefined;
    if (producer !== undefined && alive(producer)) {
      producer.child.kill("SIGKILL");
      await producer.exited;
    }
    for (const p of [...this.processors.values()]) {
      this.processors.delete(p.name);
      if (alive(p)) p.child.kill("SIGKILL");
      await p.exited;
    }
  }
}

/** Rejects on the first SIGINT or SIGTERM (the handlers replace the default exit until disposed). */
function interruption(): { signalled: Promise<never>; dispose: () => void } {
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const signalled = new Promise<never>((_, reject) => {
    onSignal = (signal) => reject(new AgentmeterError("SERVICE_UNAVAILABLE", `interrupted by ${signal}`));
  });
  signalled.catch(() => undefined);
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  return {
    signalled,
    dispose: () => {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    },
  };
}

/** Where a run writes: .agentmeter/soak/runs/{runId}/ (plan, schedule, acks, logs, report). */
export function runDirOf(runId: string, which: SoakStack = "cli"): string {
  return path.join(soakHome(which), "runs", runId);
}

/** The soak stack's data is disposable: every run starts on empty servers, so the audit covers one run. */
async function freshStack(stack: StackConfig, logger: Logger): Promise<StackEndpoints> {
  const log = (line: string) => logger.info(line);
  await stackDown({ config: stack, log });
  for (const name of [
    "kafka",
    "kafka-2",
    "kafka-3",
    "clickhouse",
    "postgres",
    "ferretdb",
    "kafka-cluster-id",
    "logs",
  ])
    await rm(path.join(stack.homeDir, name), { recursive: true, force: true });
  return stackUp({ config: stack, log });
}

export async function runSoak(
  options: SoakOptions,
  logger: Logger = createLogger("info", "soak"),
): Promise<SoakReport> {
  const t0 = Date.now();
  const runId = `s${options.seed}-${t0.toString(36)}`;
  const runDir = runDirOf(runId, options.stack);
  mkdirSync(path.join(runDir, "logs"), { recursive: true });
  const { apps, usersPerApp } = shapeOf(options.accounts);
  const stack = soakStackConfig(options.brokers, options.stack);
  logger.info({ runDir }, "starting the soak stack (its own ports, fresh data)");
  const endpoints = await freshStack(stack, logger);
  const env: Record<string, string> = {
    KAFKA_BROKERS: endpoints.kafkaBrokers.join(","),
    MONGODB_URI: endpoints.mongoUri,
    CLICKHOUSE_URL: endpoints.clickhouseUrl,
    KAFKA_CLIENT_ID: "soak",
    AGENTMETER_GROUP_ID: "soak-processor",
    // The default session timeout (30 s), as in production: at 10 s, on this 2-core machine shared with
    // other runs, members were evicted mid-batch over and over (docs/reliability.md, seed 13).
    LOG_LEVEL: "info",
  };
  const config = loadConfig({ ...env, AGENTMETER_METRICS_PORT: "0" });
  const plan: SoakPlan = {
    runId,
    seed: options.seed,
    records: options.records,
    accounts: options.accounts,
    apps,
    usersPerApp,
    durationS: options.durationS,
    brokers: options.brokers,
    faults: options.faults,
    // The producer's clock starts once the processors are up.
    t0: 0,
    ...eventTimes(t0, options.records),
  };
  const schedule = scheduleOf(options);
  const kafka = createKafka(config, createLogger("error", "soak-kafka"));
  const soak = new Soak(plan, stack, env, config, kafka, runDir, logger);
  const faults: FaultRecord[] = [];
  const stop = { done: false };
  let sampler: Promise<void> | undefined;
  let verdict: Verdict | undefined;
  const times = { produce: 0, drain: 0, total: 0 };
  // SIGINT or SIGTERM ends the run where it is: the children and the soak's stack are stopped below,
  // and the report says it was interrupted (a run stopped by hand left them all running before).
  const interrupt = interruption();
  const body = async () => {
    const initial = Math.min(3, Math.max(2, options.processors ?? 2));
    for (let i = 0; i < initial; i++) await soak.spawnProcessor();
    plan.t0 = Date.now() + 2_000;
    writeFileSync(path.join(runDir, "plan.json"), `${JSON.stringify(plan, null, 2)}\n`);
    writeFileSync(path.join(runDir, "schedule.json"), `${JSON.stringify({ options, schedule }, null, 2)}\n`);
    sampler = soak.sample(stop);
    soak.startProducer();
    const random = prng(options.seed ^ 0x0e5e);
    // Faults are spread over the production time; each waits for the previous one's recovery (bounded).
    const spacing = Math.max(5, (options.durationS * 0.8) / Math.max(1, schedule.length));
    for (const [index, fault] of schedule.entries()) {
      const due = plan.t0 + 5_000 + index * spacing * 1_000 + random() * 3_000;
      if (due > Date.now()) await sleep(due - Date.now());
      const at = soak.seconds();
      const lagBefore = soak.lagBefore(at);
      logger.info({ fault: fault.kind, index, of: schedule.length }, "nemesis: injecting");
      let outcome: { target: string; note?: string };
      try {
        outcome = await within(`fault ${fault.kind}`, 300_000, soak.inject(fault.kind, fault.downS, random));
      } catch (error) {
        soak.findings.push(`fault ${fault.kind} at ${at.toFixed(0)} s: ${(error as Error).message}`);
        outcome = { target: "?", note: (error as Error).message };
      }
      const end = soak.seconds();
      const recoveryS = await soak.recovery(end, lagBefore, 240);
      if (recoveryS === null)
        soak.findings.push(
          `fault ${fault.kind} at ${at.toFixed(0)} s: lag not back under ${lagBefore} within 240 s`,
        );
      faults.push({ kind: fault.kind, at, lasted: end - at, lagBefore, recoveryS, ...outcome });
      logger.info({ fault: fault.kind, recoveryS, target: outcome.target }, "nemesis: recovered");
    }
    // Bounded: the producer's pace plus a margin for the faults' backlog.
    const produceDeadline = plan.t0 + (options.durationS + 900) * 1_000;
    while (!soak.producerDone && Date.now() < produceDeadline) await sleep(1_000);
    if (!soak.producerDone)
      throw new AgentmeterError("SERVICE_UNAVAILABLE", "the producer did not finish in time");
    times.produce = (Date.now() - plan.t0) / 1000;
    logger.info("producer done; waiting for lag zero");
    const drainDeadline = Date.now() + 20 * 60_000;
    for (;;) {
      const lag = await soak.lag();
      if (lag === 0) break;
      if (Date.now() > drainDeadline)
        throw new AgentmeterError(
          "SERVICE_UNAVAILABLE",
          `lag still ${lag} 20 minutes after the producer finished`,
        );
      await sleep(1_000);
    }
    times.drain = (Date.now() - plan.t0) / 1000 - times.produce;
    stop.done = true;
    await sampler;
    for (const p of [...soak.processors.values()]) {
      const exit = await soak.stopProcessor(p, "SIGTERM");
      if (exit.code !== 0)
        soak.findings.push(`${p.name} exited ${exit.code}/${exit.signal} on the final SIGTERM`);
    }
    const acked = new Map<number, string>();
    for (const line of readFileSync(path.join(runDir, "acks.txt"), "utf8").split("\n")) {
      const [seq, inc, tries] = line.split(" ");
      if (seq !== undefined && seq !== "") acked.set(Number(seq), `${inc} ${tries}`);
    }
    verdict = await runChecks({
      plan,
      config,
      billing: loadBillingConfig(config),
      kafka,
      logger,
      acked,
      recordsFile: path.join(runDir, "records.jsonl"),
    });
  };
  try {
    await Promise.race([body(), interrupt.signalled]);
  } catch (error) {
    soak.findings.push(`soak stopped: ${(error as Error).message}`);
    logger.error({ err: error }, "soak stopped");
  } finally {
    interrupt.dispose();
    stop.done = true;
    await sampler;
    await soak.close();
    times.total = (Date.now() - t0) / 1000;
    await stackDown({ config: stack, log: (line) => logger.info(line) }).catch((error: unknown) =>
      soak.findings.push(`stack down: ${(error as Error).message}`),
    );
  }
  const passed = verdict?.checks.every((check) => check.ok) ?? false;
  const ok =
    passed &&
    verdict?.lost === 0 &&
    verdict.doubled === 0 &&
    !soak.findings.some((finding) => finding.startsWith("soak stopped"));
  const report: SoakReport = {
    plan,
    stack: options.stack ?? "cli",
    schedule,
    faults,
    findings: soak.findings,
    seconds: times,
    recordsPerSecond: times.produce + times.drain > 0 ? options.records / (times.produce + times.drain) : 0,
    peakProcessorRssMb: Math.round(soak.peakRssMb),
    verdict,
    ok,
  };
  writeFileSync(
    path.join(runDir, "report.json"),
    `${JSON.stringify(report, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`,
  );
  if (existsSync(path.join(runDir, "records.jsonl")))
    await rm(path.join(runDir, "records.jsonl"), { force: true });
  return report;
}

export { FAULT_KINDS };
