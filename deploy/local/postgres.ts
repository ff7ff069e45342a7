import { chownSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { readFile, rm } from "node:fs/promises";
import path from "node:path";
import { AgentmeterError } from "../../schemas/errors.ts";
import { findPostgresBinDir } from "./prerequisites.ts";
import { processStartTime, run, runOrThrow, spawnDetached, stopGroup } from "./process.ts";
import { type LocalService, logPath, serviceHome } from "./service.ts";
import type { StackConfig } from "./stack-config.ts";

/**
 * PostgreSQL is FerretDB's storage. It comes from the OS (Debian's postgresql package), not from our cache:
 * building it is slow and apt is one of the registries we may use. The cluster is ours alone: initdb into
 * AGENTMETER_HOME, own port, own socket dir; the system service (if any) is never touched.
 */
const DB_USER = "postgres";
export const FERRET_DATABASE = "ferretdb";

function binDir(): string {
  const dir = findPostgresBinDir();
  if (dir === undefined) {
    throw new AgentmeterError("SERVICE_INSTALL_FAILED", "postgres: initdb not found; install PostgreSQL");
  }
  return dir;
}

/** postgres refuses to run as root, so as root we run it as the postgres account Debian's package creates. */
function runAs(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((l) => l.startsWith(`${DB_USER}:`));
  const fields = line?.split(":");
  if (fields === undefined || fields.length < 4) {
    throw new AgentmeterError(
      "SERVICE_START_FAILED",
      "postgres: running as root but there is no 'postgres' account to run the server as",
    );
  }
  return { uid: Number(fields[2]), gid: Number(fields[3]) };
}

function paths(config: StackConfig) {
  const home = serviceHome(config, "postgres");
  return { home, data: path.join(home, "data"), sockets: path.join(home, "run") };
}

function ownedDir(dir: string, owner: { uid: number; gid: number } | undefined): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (owner) chownSync(dir, owner.uid, owner.gid);
}

function clientArgs(config: StackConfig): string[] {
  return ["-h", "127.0.0.1", "-p", String(config.pgPort), "-U", DB_USER];
}

async function psql(config: StackConfig, sql: string, database = "postgres"): Promise<string> {
  const out = await runOrThrow("SERVICE_START_FAILED", "psql", path.join(binDir(), "psql"), [
    ...clientArgs(config),
    "-d",
    database,
    "-tAc",
    sql,
  ]);
  return out.trim();
}

/**
 * FerretDB v1 turns a filter on `_id` into `_jsonb->'_id' @> $1`, which its own btree index on `_id`
 * cannot serve: every update by `_id` scanned its whole table (82 ms at 11,000 documents here, and
 * slower as collections grow; FerretDB issue 4646). A GIN index on the same expression serves `@>`
 * (0.05 ms). This event trigger gives every table FerretDB creates one, in the same transaction.
 */
const ID_GIN_TRIGGER = `
CREATE OR REPLACE FUNCTION agentmeter_id_gin() RETURNS event_trigger LANGUAGE plpgsql AS $body$
DECLARE created record;
BEGIN
  FOR created IN
    SELECT c.oid, n.nspname, c.relname FROM pg_event_trigger_ddl_commands() d
    JOIN pg_class c ON c.oid = d.objid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE d.command_tag = 'CREATE TABLE' AND d.object_type = 'table'
  LOOP
    IF EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = created.oid AND attname = '_jsonb' AND NOT attisdropped) THEN
      EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON %I.%I USING gin ((_jsonb -> %L))',
        left(created.relname, 50) || '_id_gin', created.nspname, created.relname, '_id');
    END IF;
  END LOOP;
END
$body$;
DROP EVENT TRIGGER IF EXISTS agentmeter_id_gin;
CREATE EVENT TRIGGER agentmeter_id_gin ON ddl_command_end WHEN TAG IN ('CREATE TABLE')
  EXECUTE FUNCTION agentmeter_id_gin();
`;

/**
 * PostgreSQL refuses to start while the pid in one of its lock files (the data directory's postmaster.pid,
 * the socket's .s.PGSQL.<port>.lock) answers kill(pid, 0), which a zombie does: a killed postmaster orphaned
 * under a PID 1 that never reaps (this CI's init) would block every later start. Only a lock whose process
 * has exited is removed; a live postmaster's lock is left for PostgreSQL to refuse.
 */
export async function removeStaleLocks(locks: readonly string[], log: (line: string) => void): Promise<void> {
  for (const lock of locks) {
    const pid = Number((await readFile(lock, "utf8").catch(() => "")).split("\n")[0]);
    if (!Number.isInteger(pid) || pid <= 0 || processStartTime(pid) !== undefined) continue;
    log(`postgres: removing ${path.basename(lock)} of exited postmaster ${pid}`);
    await rm(lock, { force: true });
  }
}

export const postgres: LocalService = {
  name: "postgres",
  readyTimeoutMs: 60_000,
  ports: (config) => [{ port: config.pgPort, variable: "AGENTMETER_PG_PORT" }],
  logFile: (config) => logPath(config, "postgres"),
  tools: () => ["postgresql"],

  async install(_config, log) {
    if (findPostgresBinDir() !== undefined) return;
    if (process.getuid?.() !== 0) {
      throw new AgentmeterError(
        "SERVICE_INSTALL_FAILED",
        "postgres: PostgreSQL is not installed; run `sudo apt-get install -y postgresql` (or your OS's package)",
      );
    }
    const started = Date.now();
    log("installing postgresql from Debian (apt-get) ...");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    await runOrThrow("SERVICE_INSTALL_FAILED", "apt-get update", "apt-get", ["update"], { env });
    await runOrThrow(
      "SERVICE_INSTALL_FAILED",
      "apt-get install postgresql",
      "apt-get",
      ["install", "-y", "postgresql"],
      {
        env,
      },
    );
    log(`installed postgresql in ${((Date.now() - started) / 1000).toFixed(1)}s`);
  },

  async start(config, log) {
    const p = paths(config);
    const owner = runAs();
    ownedDir(p.home, owner);
    ownedDir(p.sockets, owner);
    if (!existsSync(path.join(p.data, "PG_VERSION"))) {
      log("postgres: initdb (first start)");
      ownedDir(p.data, owner);
      await runOrThrow(
        "SERVICE_START_FAILED",
        "postgres initdb",
        path.join(binDir(), "initdb"),
        // trust on 127.0.0.1 only: a throwaway local store, no secrets to manage.
        ["-D", p.data, "-U", DB_USER, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"],
        { ...owner, cwd: p.home },
      );
    }
    await removeStaleLocks(
      [path.join(p.data, "postmaster.pid"), path.join(p.sockets, `.s.PGSQL.${config.pgPort}.lock`)],
      log,
    );
    return spawnDetached(
      path.join(binDir(), "postgres"),
      [
        "-D",
        p.data,
        "-p",
        String(config.pgPort),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        `unix_socket_directories=${p.sockets}`,
        // Test stack, data is disposable: trade crash safety for write speed. Never copy these to production.
        "-c",
        "fsync=off",
        "-c",
        "synchronous_commit=off",
        "-c",
        "full_page_writes=off",
        "-c",
        "max_connections=200",
      ],
      { cwd: p.home, logFile: logPath(config, "postgres"), ...owner },
    );
  },

  async ready(config) {
    const result = await run(path.join(binDir(), "pg_isready"), ["-q", ...clientArgs(config)]);
    return result.code === 0;
  },

  async afterReady(config, log) {
    const exists = await psql(config, `SELECT 1 FROM pg_database WHERE datname = '${FERRET_DATABASE}'`);
    if (exists !== "1") {
      log(`postgres: creating database ${FERRET_DATABASE}`);
      await psql(config, `CREATE DATABASE ${FERRET_DATABASE}`);
    }
    await psql(config, ID_GIN_TRIGGER, FERRET_DATABASE);
  },

  async stop(_config, record) {
    // SIGINT is PostgreSQL's "fast" shutdown; SIGTERM ("smart") would wait for clients to leave.
    await stopGroup(record.pid, "SIGINT", 30_000);
  },

  async version(config) {
    return psql(config, "SHOW server_version");
  },
};
