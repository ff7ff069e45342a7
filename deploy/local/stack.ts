import { AgentmeterError } from "../../schemas/errors.ts";
import { clickhouse } from "./clickhouse.ts";
import { ferretdb } from "./ferretdb.ts";
import { kafkaServices } from "./kafka.ts";
import { withStackLock } from "./lock.ts";
import { postgres } from "./postgres.ts";
import { ensureTools } from "./prerequisites.ts";
import {
  isRunning,
  type PidRecord,
  portFree,
  readPidRecord,
  removePidRecord,
  treeMemoryBytes,
  waitReady,
  writePidRecord,
} from "./process.ts";
import { type LocalService, type Log, pidPath, type ServiceName } from "./service.ts";
import { endpointsOf, loadStackConfig, type StackConfig, type StackEndpoints } from "./stack-config.ts";

export { connectionEnv, loadStackConfig, type StackConfig, type StackEndpoints } from "./stack-config.ts";

export interface StackOptions {
  config?: StackConfig;
  /** Progress lines; default stderr, so stdout stays clean for the connection env. */
  log?: Log;
  /** Start only these services (a test's own Kafka cluster beside the shared stack); default all. */
  only?: readonly ServiceName[];
}

export type ServiceState = "running" | "unready" | "dead" | "stopped";

export interface ServiceStatus {
  name: ServiceName;
  state: ServiceState;
  pid: number | undefined;
  ports: number[];
  memoryBytes: number | undefined;
  version: string | undefined;
  logFile: string;
}

const stderrLog: Log = (line) => process.stderr.write(`${line}\n`);

function servicesOf(config: StackConfig, only?: readonly ServiceName[]): LocalService[] {
  const all =
    config.ferretBackend === "postgresql"
      ? [...kafkaServices(config), clickhouse, postgres, ferretdb]
      : [...kafkaServices(config), clickhouse, ferretdb];
  return only === undefined ? all : all.filter((service) => only.includes(service.name));
}

/** Every service a stack directory can hold a pid file for, whatever its configuration now says. */
function everyService(config: StackConfig): LocalService[] {
  return [...kafkaServices({ ...config, kafkaNodes: 3 }), clickhouse, postgres, ferretdb];
}

/** FerretDB needs its PostgreSQL up; everything else starts side by side. */
function dependenciesOf(service: LocalService, config: StackConfig): ServiceName[] {
  return service.name === "ferretdb" && config.ferretBackend === "postgresql" ? ["postgres"] : [];
}

async function assertPortsFree(config: StackConfig, service: LocalService): Promise<void> {
  for (const { port, variable } of service.ports(config)) {
    if (!(await portFree(port))) {
      throw new AgentmeterError(
        "PORT_IN_USE",
        `${service.name}: port ${port} on 127.0.0.1 is taken by a process that is not this stack's (set ${variable} to move it)`,
        { details: { service: service.name, port, variable } },
      );
    }
  }
}

function seconds(since: number): string {
  return `${((Date.now() - since) / 1000).toFixed(1)}s`;
}

/**
 * Installs (first use only) and starts whatever part of the stack is not running, then returns where it
 * listens. Running services are left alone, so calling it again is cheap and changes nothing.
 */
export async function stackUp(options: StackOptions = {}): Promise<StackEndpoints> {
  const config = options.config ?? loadStackConfig();
  const log = options.log ?? stderrLog;
  // Every program the install and start will run, checked before the lock and before anything happens:
  // one message listing all that is missing, rather than one failure per service minutes apart.
  await ensureTools(
    servicesOf(config, options.only).flatMap((service) => service.tools(config)),
    log,
  );
  await withStackLock(config.homeDir, log, async () => {
    const services = servicesOf(config, options.only);
    const toStart = new Set<ServiceName>();
    /**
     * Ours and alive but not ready: waited for rather than started again, once what it depends on is up.
     * Waiting first would never end when the reason is a dead dependency (FerretDB over a killed
     * PostgreSQL), so the dead are started in the same pass.
     */
    const unready = new Map<ServiceName, PidRecord>();
    for (const service of services) {
      const file = pidPath(config, service.name);
      const record = await readPidRecord(file);
      if (record !== undefined && isRunning(record)) {
        if (!(await service.ready(config))) unready.set(service.name, record);
        continue;
      }
      if (record !== undefined) {
        // The record stays until the new process replaces it, so a failed `up` still reports it as dead.
        log(`${service.name}: pid ${record.pid} is gone (died or was killed); starting it again`);
      }
      toStart.add(service.name);
    }
    if (toStart.size === 0 && unready.size === 0) return;
    // Before any download: a clash should fail in a second, not after minutes of installing.
    for (const service of services) if (toStart.has(service.name)) await assertPortsFree(config, service);

    const started = Date.now();
    const done = new Map<ServiceName, Promise<void>>();
    /** What this call started, so a failed `up` can stop it again instead of leaving half a stack. */
    const startedHere = new Map<ServiceName, PidRecord>();
    for (const service of services) {
      done.set(
        service.name,
        (async () => {
          await service.install(config, log);
          const deps = dependenciesOf(service, config);
          await Promise.all(deps.map((dep) => done.get(dep))).catch(() => {
            // The dependency's own error is reported once, by the dependency.
            throw new AgentmeterError(
              "SERVICE_START_FAILED",
              `${service.name}: not started because ${deps} failed`,
            );
          });
          const waiting = unready.get(service.name);
          if (waiting !== undefined) {
            await waitReady({
              service: service.name,
              record: waiting,
              probe: () => service.ready(config),
              timeoutMs: service.readyTimeoutMs,
              logFile: service.logFile(config),
            });
            return;
          }
          if (!toStart.has(service.name)) return;
          const t0 = Date.now();
          const record = await service.start(config, log);
          startedHere.set(service.name, record);
          await writePidRecord(pidPath(config, service.name), record);
          await waitReady({
            service: service.name,
            record,
            probe: () => service.ready(config),
            timeoutMs: service.readyTimeoutMs,
            logFile: service.logFile(config),
          });
          await service.afterReady?.(config, log);
          log(`${service.name}: ready in ${seconds(t0)} (pid ${record.pid})`);
        })(),
      );
    }
    const results = await Promise.allSettled(done.values());
    const failures = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    if (failures.length > 0) {
      await stopStarted(config, log, startedHere);
      if (failures.length === 1) throw failures[0];
      throw new AgentmeterError(
        "SERVICE_START_FAILED",
        failures.map((f) => (f instanceof Error ? f.message : String(f))).join("\n"),
        { cause: failures[0] },
      );
    }
    log(`stack up in ${seconds(started)}`);
  });
  return endpointsOf(config);
}

/** After a failed `up`: stops what that `up` started (FerretDB first), leaving what already ran alone. */
async function stopStarted(
  config: StackConfig,
  log: Log,
  started: Map<ServiceName, PidRecord>,
): Promise<void> {
  const order = [ferretdb, ...kafkaServices(config), clickhouse, postgres].filter((s) => started.has(s.name));
  for (const service of order) {
    const record = started.get(service.name);
    if (record === undefined) continue;
    log(`${service.name}: stopping it again (stack:up failed)`);
    try {
      if (isRunning(record)) await service.stop(config, record);
      await removePidRecord(pidPath(config, service.name));
    } catch (error) {
      log(
        `${service.name}: could not stop pid ${record.pid}: ${error instanceof Error ? error.message : error}`,
      );
    }
  }
}

/** Stops every service of this stack (process groups, then SIGKILL for stragglers) and forgets their pids. */
export async function stackDown(options: StackOptions = {}): Promise<void> {
  const config = options.config ?? loadStackConfig();
  const log = options.log ?? stderrLog;
  await withStackLock(config.homeDir, log, async () => {
    const stopOne = async (service: LocalService) => {
      const file = pidPath(config, service.name);
      const record = await readPidRecord(file);
      if (record !== undefined && isRunning(record)) {
        const t0 = Date.now();
        await service.stop(config, record);
        if (isRunning(record)) {
          throw new AgentmeterError(
            "SERVICE_UNAVAILABLE",
            `${service.name}: pid ${record.pid} survived SIGKILL`,
          );
        }
        log(`${service.name}: stopped in ${seconds(t0)}`);
      }
      await removePidRecord(file);
    };
    // FerretDB first: it holds connections that PostgreSQL's shutdown would otherwise cut under it.
    // Whatever the configured backend, stop every service that has a pid file.
    await stopOne(ferretdb);
    await Promise.all(
      everyService(config)
        .filter((service) => service !== ferretdb)
        .map(stopOne),
    );
  });
}

export async function stackStatus(
  options: StackOptions & { versions?: boolean } = {},
): Promise<ServiceStatus[]> {
  const config = options.config ?? loadStackConfig();
  return Promise.all(
    servicesOf(config).map(async (service): Promise<ServiceStatus> => {
      const record = await readPidRecord(pidPath(config, service.name));
      const base = {
        name: service.name,
        pid: record?.pid,
        ports: service.ports(config).map((p) => p.port),
        logFile: service.logFile(config),
      };
      if (record === undefined)
        return { ...base, state: "stopped", memoryBytes: undefined, version: undefined };
      if (!isRunning(record)) return { ...base, state: "dead", memoryBytes: undefined, version: undefined };
      const ready = await service.ready(config);
      const version =
        ready && options.versions ? await service.version(config).catch(() => undefined) : undefined;
      return {
        ...base,
        state: ready ? "running" : "unready",
        memoryBytes: treeMemoryBytes(record.pid),
        version,
      };
    }),
  );
}
