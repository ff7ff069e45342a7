import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeSync,
} from "node:fs";
import { rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { AgentmeterError } from "../../schemas/errors.ts";
import { runOrThrow, spawnDetached, stopGroup, waitGroupExit } from "./process.ts";
import { installed, installOnce, type LocalService, logPath, serviceHome } from "./service.ts";
import { type StackConfig, VERSIONS } from "./stack-config.ts";

/**
 * A current ClickHouse engine (26.x) from npm: libchdb.so is clickhouse-local as a library. Our C loader
 * (chdb-server.c) runs it with listeners on, which makes it a real HTTP/TCP server for @clickhouse/client.
 * Debian's clickhouse-server is from 2018 and lacks what the project uses.
 */
const LIB_PACKAGE = "@chdb/lib-linux-x64-gnu";
const LOADER_SOURCE = path.join(path.dirname(fileURLToPath(import.meta.url)), "chdb-server.c");

function installDir(config: StackConfig): string {
  return path.join(config.cacheDir, "clickhouse", VERSIONS.chdbLib);
}

function libDir(config: StackConfig): string {
  return path.join(installDir(config), "node_modules", ...LIB_PACKAGE.split("/"));
}

/** The loader is keyed by a hash of its source, so editing chdb-server.c rebuilds it and nothing else. */
function loaderPath(config: StackConfig): string {
  const hash = createHash("sha256").update(readFileSync(LOADER_SOURCE)).digest("hex").slice(0, 12);
  return path.join(installDir(config), `chdb-server-${hash}`);
}

function paths(config: StackConfig) {
  const home = serviceHome(config, "clickhouse");
  return { home, data: path.join(home, "data"), fifo: path.join(home, "stop.fifo") };
}

function isFifo(file: string): boolean {
  try {
    return statSync(file).isFIFO();
  } catch {
    return false;
  }
}

async function httpQuery(config: StackConfig, sql: string, timeoutMs = 2000): Promise<string> {
  const url = `http://127.0.0.1:${config.clickhouseHttpPort}/?query=${encodeURIComponent(sql)}`;
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const body = await response.text();
  if (!response.ok) throw new AgentmeterError("SERVICE_UNAVAILABLE", `clickhouse: ${body.trim()}`);
  return body.trim();
}

export const clickhouse: LocalService = {
  name: "clickhouse",
  readyTimeoutMs: 60_000,
  ports: (config) => [
    { port: config.clickhouseHttpPort, variable: "AGENTMETER_CLICKHOUSE_HTTP_PORT" },
    { port: config.clickhouseTcpPort, variable: "AGENTMETER_CLICKHOUSE_TCP_PORT" },
  ],
  logFile: (config) => logPath(config, "clickhouse"),
  tools: (config) => [
    ...(installed(installDir(config)) ? [] : (["npm"] as const)),
    ...(existsSync(loaderPath(config)) ? [] : (["gcc"] as const)),
  ],

  async install(config, log) {
    await installOnce(
      installDir(config),
      `clickhouse (${LIB_PACKAGE}@${VERSIONS.chdbLib}) from npm`,
      log,
      async (dir) => {
        // Only the platform library is needed; the `chdb` package around it is a node binding we do not use.
        await writeFile(path.join(dir, "package.json"), '{ "private": true }\n');
        await runOrThrow(
          "SERVICE_INSTALL_FAILED",
          "npm install of libchdb",
          "npm",
          [
            "install",
            "--no-save",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            `${LIB_PACKAGE}@${VERSIONS.chdbLib}`,
          ],
          // npm's own cache inside ours: self-contained, and a cold run is really cold.
          { cwd: dir, env: { ...process.env, npm_config_cache: path.join(config.cacheDir, "npm") } },
        );
        if (!existsSync(path.join(libDir(config), "libchdb.so"))) {
          throw new AgentmeterError(
            "SERVICE_INSTALL_FAILED",
            `npm did not provide ${LIB_PACKAGE}/libchdb.so`,
          );
        }
        // npm's cache would keep a second, compressed copy of the 566 MB library.
        await rm(path.join(config.cacheDir, "npm"), { recursive: true, force: true });
      },
    );
    const loader = loaderPath(config);
    if (!existsSync(loader)) {
      const started = Date.now();
      const lib = libDir(config);
      const tmp = `${loader}.tmp${process.pid}`;
      await runOrThrow("SERVICE_INSTALL_FAILED", "compiling the chdb loader", "gcc", [
        "-O2",
        "-o",
        tmp,
        LOADER_SOURCE,
        `-L${lib}`,
        "-lchdb",
        `-Wl,-rpath,${lib}`,
      ]);
      await rename(tmp, loader);
      log(`compiled chdb loader in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    }
  },

  async start(config) {
    const p = paths(config);
    mkdirSync(p.data, { recursive: true });
    if (existsSync(p.fifo) && !isFifo(p.fifo)) rmSync(p.fifo, { force: true });
    if (!existsSync(p.fifo)) {
      await runOrThrow("SERVICE_START_FAILED", "creating the clickhouse stop fifo", "mkfifo", [p.fifo]);
    }
    // The final SELECT blocks reading the FIFO; that is what keeps clickhouse-local serving until `down`.
    const query = [
      "SYSTEM START LISTEN HTTP",
      "SYSTEM START LISTEN TCP",
      `SELECT count() FROM file('${p.fifo}', 'LineAsString')`,
    ].join("; ");
    return spawnDetached(
      loaderPath(config),
      [
        `--path=${p.data}`,
        "--listen_host=127.0.0.1",
        `--http_port=${config.clickhouseHttpPort}`,
        `--tcp_port=${config.clickhouseTcpPort}`,
        "--output-format=TabSeparated",
        "--query",
        query,
      ],
      { cwd: p.home, logFile: logPath(config, "clickhouse") },
    );
  },

  async ready(config) {
    try {
      const response = await fetch(`http://127.0.0.1:${config.clickhouseHttpPort}/ping`, {
        signal: AbortSignal.timeout(1000),
      });
      return response.ok && (await response.text()).startsWith("Ok");
    } catch {
      return false;
    }
  },

  async stop(config, record) {
    const { fifo } = paths(config);
    try {
      // Non-blocking: with no reader (server hung or gone) open fails with ENXIO instead of hanging us.
      const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
      try {
        writeSync(fd, "stop\n");
      } finally {
        closeSync(fd);
      }
      if (await waitGroupExit(record.pid, 10_000)) return;
    } catch {
      // Fall through to signals.
    }
    await stopGroup(record.pid, "SIGTERM", 10_000);
  },

  async version(config) {
    return httpQuery(config, "SELECT version()");
  },
};
