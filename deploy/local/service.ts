import { existsSync, mkdirSync } from "node:fs";
import { rm, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Tool } from "./prerequisites.ts";
import type { PidRecord } from "./process.ts";
import type { StackConfig } from "./stack-config.ts";

export type ServiceName = "kafka" | "kafka-2" | "kafka-3" | "clickhouse" | "postgres" | "ferretdb";

export type Log = (line: string) => void;

/** A port and the variable that moves it, so a clash can say how to get out of the way. */
export interface ServicePort {
  port: number;
  variable: string;
}

/** What stack.ts needs from each server; each module (kafka.ts, clickhouse.ts, ...) provides one. */
export interface LocalService {
  name: ServiceName;
  /** Ports it binds on 127.0.0.1, checked before start so a foreign listener gets a clear error. */
  ports(config: StackConfig): ServicePort[];
  /** Programs `install` (when the cache lacks this version) and `start`/`ready` will run; checked up front. */
  tools(config: StackConfig): Tool[];
  /** Idempotent; fetches only when the cache lacks this version. */
  install(config: StackConfig, log: Log): Promise<void>;
  /** Spawns the detached server (after any first-start initialisation) and returns its process. */
  start(config: StackConfig, log: Log): Promise<PidRecord>;
  /** One readiness probe; true when a real client request succeeded. */
  ready(config: StackConfig): Promise<boolean>;
  readyTimeoutMs: number;
  /** One-off set-up that needs the server up (e.g. creating FerretDB's database in PostgreSQL). */
  afterReady?(config: StackConfig, log: Log): Promise<void>;
  stop(config: StackConfig, record: PidRecord): Promise<void>;
  version(config: StackConfig): Promise<string>;
  logFile(config: StackConfig): string;
}

export function serviceHome(config: StackConfig, name: ServiceName): string {
  return path.join(config.homeDir, name);
}

export function logPath(config: StackConfig, name: ServiceName): string {
  return path.join(config.homeDir, "logs", `${name}.log`);
}

export function pidPath(config: StackConfig, name: ServiceName): string {
  return path.join(config.homeDir, "run", `${name}.pid.json`);
}

const COMPLETE = ".complete";

/** True when installOnce finished in `dir` (its marker is there). */
export function installed(dir: string): boolean {
  return existsSync(path.join(dir, COMPLETE));
}

/**
 * Runs an installer into `dir` unless a previous run finished there. The marker is written last, so an
 * interrupted install (Ctrl-C, network) is wiped and redone instead of leaving a half-filled cache.
 */
export async function installOnce(
  dir: string,
  label: string,
  log: Log,
  install: (dir: string) => Promise<void>,
): Promise<void> {
  if (existsSync(path.join(dir, COMPLETE))) return;
  const started = Date.now();
  log(`installing ${label} ...`);
  await rm(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  await install(dir);
  await writeFile(path.join(dir, COMPLETE), `${new Date().toISOString()}\n`);
  log(`installed ${label} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
}
