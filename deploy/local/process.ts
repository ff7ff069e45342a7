import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync } from "node:fs";
import { readFile, rm, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { AgentmeterError, type ErrorCode } from "../../schemas/errors.ts";

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface ProcStat {
  state: string;
  parent: number;
  group: number;
  startTime: string;
}

/** Fields of /proc/PID/stat we use; undefined when there is no such process. */
function procStat(pid: number | string): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // The command name (field 2) may contain spaces and parentheses: split after its last ')'.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return {
      state: fields[0] ?? "",
      parent: Number(fields[1]),
      group: Number(fields[2]),
      startTime: fields[19] ?? "",
    };
  } catch {
    return undefined;
  }
}

/**
 * A zombie has exited but was never reaped. Where PID 1 does not reap orphans (this CI's firecracker init),
 * a killed server that outlived the process which started it stays a zombie for good: kill(pid, 0) still
 * succeeds on it, so liveness must come from /proc, not from signals.
 */
const exited = (stat: ProcStat) => stat.state === "Z" || stat.state === "X";

/**
 * Kernel start time of a running process (clock ticks since boot, field 22 of /proc/PID/stat).
 * Stored next to the pid so a recycled pid is never mistaken for our server.
 */
export function processStartTime(pid: number): string | undefined {
  const stat = procStat(pid);
  return stat === undefined || exited(stat) ? undefined : stat.startTime;
}

/** Pids of the running processes whose parent is `pid`. */
export function childrenOf(pid: number): number[] {
  return procEntries()
    .filter(([, stat]) => stat.parent === pid && !exited(stat))
    .map(([child]) => child);
}

function procEntries(): [number, ProcStat][] {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return [];
  }
  const result: [number, ProcStat][] = [];
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    // undefined: the process went away while we looked.
    const stat = procStat(entry);
    if (stat !== undefined) result.push([Number(entry), stat]);
  }
  return result;
}

export interface PidRecord {
  pid: number;
  startTime: string;
  startedAt: string;
  command: string;
}

export function isRunning(record: PidRecord): boolean {
  return processStartTime(record.pid) === record.startTime;
}

export async function readPidRecord(file: string): Promise<PidRecord | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as PidRecord;
  } catch {
    return undefined;
  }
}

export async function writePidRecord(file: string, record: PidRecord): Promise<void> {
  mkdirSync(path.dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(record)}\n`);
}

export async function removePidRecord(file: string): Promise<void> {
  await rm(file, { force: true });
}

/**
 * Memory of a server and all its descendants, as PSS (shared pages split between sharers): PostgreSQL runs a
 * process per connection over one shared buffer pool, and summing RSS would count that pool once per backend.
 * The tree, not the process group: PostgreSQL's children put themselves in their own groups.
 */
export function treeMemoryBytes(pid: number): number {
  const children = new Map<number, number[]>();
  for (const [entry, stat] of procEntries()) {
    const list = children.get(stat.parent) ?? [];
    list.push(entry);
    children.set(stat.parent, list);
  }
  let total = 0;
  const queue = [pid];
  for (let next = queue.pop(); next !== undefined; next = queue.pop()) {
    queue.push(...(children.get(next) ?? []));
    try {
      const rollup = readFileSync(`/proc/${next}/smaps_rollup`, "utf8");
      total += Number(/^Pss:\s+(\d+) kB/m.exec(rollup)?.[1] ?? 0) * 1024;
    } catch {
      // Gone, or not ours to read.
    }
  }
  return total;
}

export interface DetachedOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  logFile: string;
  uid?: number;
  gid?: number;
}

/**
 * Starts a server that outlives this node process: its own session/process group (so `down` can kill the
 * whole group), stdio to a log file, and unref'd so `stack:up` can exit.
 */
export function spawnDetached(command: string, args: string[], options: DetachedOptions): PidRecord {
  mkdirSync(path.dirname(options.logFile), { recursive: true });
  const out = openSync(options.logFile, "a");
  try {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ["ignore", out, out],
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    // A failed exec is reported asynchronously; the readiness wait sees the process gone and reports the log.
    child.on("error", () => {});
    child.unref();
    const pid = child.pid;
    if (pid === undefined) {
      throw new AgentmeterError("SERVICE_START_FAILED", `could not start ${command}`);
    }
    return {
      pid,
      startTime: processStartTime(pid) ?? "",
      startedAt: new Date().toISOString(),
      command: [command, ...args].join(" "),
    };
  } finally {
    closeSync(out);
  }
}

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      // Already gone.
    }
  }
}

/** True while any process of the group has not exited (zombies do not count, see `exited`). */
function groupAlive(pid: number): boolean {
  if (!existsSync("/proc/self/stat")) {
    try {
      process.kill(-pid, 0);
      return true;
    } catch {
      return false;
    }
  }
  return procEntries().some(([entry, stat]) => (stat.group === pid || entry === pid) && !exited(stat));
}

export async function waitGroupExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!groupAlive(pid)) return true;
    await sleep(100);
  }
  return !groupAlive(pid);
}

/** Polite signal first, then SIGKILL for whatever of the group is still there. */
export async function stopGroup(
  pid: number,
  signal: NodeJS.Signals = "SIGTERM",
  graceMs = 15_000,
): Promise<void> {
  if (!groupAlive(pid)) return;
  signalGroup(pid, signal);
  if (await waitGroupExit(pid, graceMs)) return;
  signalGroup(pid, "SIGKILL");
  await waitGroupExit(pid, 5_000);
}

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portAnswers(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: "127.0.0.1", port });
    const done = (answer: boolean) => {
      socket.destroy();
      resolve(answer);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** True when we could bind 127.0.0.1:port right now (also catches a listener on 0.0.0.0). */
export function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once("error", () => resolve(false));
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/**
 * Polls `probe` until it answers true; fails early when the server process died, quoting its log,
 * because "timed out" alone sends people looking in the wrong place.
 */
export async function waitReady(opts: {
  service: string;
  record: PidRecord;
  probe: () => Promise<boolean>;
  timeoutMs: number;
  logFile: string;
}): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    if (await opts.probe().catch(() => false)) return;
    if (!isRunning(opts.record)) {
      throw new AgentmeterError(
        "SERVICE_START_FAILED",
        `${opts.service} exited during start; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`,
      );
    }
    if (Date.now() > deadline) {
      throw new AgentmeterError(
        "SERVICE_START_FAILED",
        `${opts.service} not ready after ${opts.timeoutMs / 1000}s; last lines of ${opts.logFile}:\n${tail(opts.logFile)}`,
      );
    }
    await sleep(200);
  }
}

export interface RunResult {
  code: number;
  output: string;
}

/** Runs a tool to completion, keeping its output for the error message (installers print a lot). */
export function run(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; uid?: number; gid?: number } = {},
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(command, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.uid === undefined ? {} : { uid: options.uid }),
      ...(options.gid === undefined ? {} : { gid: options.gid }),
    });
    let output = "";
    const keep = (chunk: Buffer) => {
      output += chunk.toString();
      // Keep the tail only: mvn and go can print megabytes.
      if (output.length > 200_000) output = output.slice(-100_000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.on("error", (error) => resolve({ code: 127, output: `${output}${String(error)}` }));
    child.on("close", (code) => resolve({ code: code ?? 1, output }));
  });
}

export async function runOrThrow(
  code: ErrorCode,
  what: string,
  command: string,
  args: string[],
  options: Parameters<typeof run>[2] = {},
): Promise<string> {
  const result = await run(command, args, options);
  if (result.code !== 0) {
    const lastLines = result.output.trimEnd().split("\n").slice(-20).join("\n");
    throw new AgentmeterError(
      code,
      `${what} failed (exit ${result.code}): ${command} ${args.join(" ")}\n${lastLines}`,
    );
  }
  return result.output;
}
