import { spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, readdirSync } from "node:fs";
import path from "node:path";
import { AgentmeterError } from "../../schemas/errors.ts";
import { runOrThrow } from "./process.ts";
import type { Log } from "./service.ts";

/**
 * The programs the local stack runs besides node: checked all at once, before the stack lock is taken and
 * before anything is installed or started, so a fresh machine gets one message listing everything missing
 * instead of a failure per service minutes apart.
 */
export type Tool = "java" | "mvn" | "go" | "gcc" | "npm" | "postgresql";

/** FerretDB v1.24.2's go.mod says `go 1.24`, and we build with GOTOOLCHAIN=local (no toolchain download). */
const GO_MIN: readonly [number, number] = [1, 24];
/** Kafka 4.x brokers need Java 17. */
const JAVA_MIN = 17;

const GO_MANUAL =
  "Go is not in Debian 12's apt at that version (golang-go is 1.19): " +
  "curl -fsSL https://go.dev/dl/go1.24.3.linux-amd64.tar.gz | sudo tar -C /usr/local -xz " +
  "&& export PATH=/usr/local/go/bin:$PATH (or any Go >= 1.24 from https://go.dev/dl/)";

interface ToolSpec {
  label: string;
  /** What the stack uses it for, so the message says why it is needed. */
  why: string;
  /** Debian package that provides it at a good enough version, if apt has one. */
  apt?: string;
  /** How to install it when apt cannot. */
  manual?: string;
}

const TOOLS: Record<Tool, ToolSpec> = {
  java: {
    label: `java >= ${JAVA_MIN}`,
    why: "runs the Kafka broker",
    apt: "openjdk-17-jre-headless",
  },
  mvn: { label: "mvn", why: "downloads the Kafka jars from Maven Central (first run)", apt: "maven" },
  go: {
    label: `go >= ${GO_MIN.join(".")}`,
    why: "builds FerretDB from source (first run)",
    manual: GO_MANUAL,
  },
  gcc: { label: "gcc", why: "compiles the ClickHouse loader (first run)", apt: "gcc" },
  npm: {
    label: "npm",
    why: "downloads libchdb (first run)",
    manual: "npm comes with Node.js 20.19+ (https://nodejs.org/en/download)",
  },
  postgresql: {
    label: "PostgreSQL (initdb, postgres, pg_isready, psql)",
    why: "stores FerretDB's data",
    apt: "postgresql",
  },
};

export interface MissingTool {
  tool: Tool;
  /** Why it does not do: not found, or the version found. */
  problem: string;
}

export interface CheckEnv {
  /** PATH to search; the process's PATH by default. */
  PATH?: string;
  /** java is taken from JAVA_HOME when set, as kafka.ts does. */
  JAVA_HOME?: string;
  /** Where Debian keeps PostgreSQL's server binaries (/usr/lib/postgresql/<major>/bin). */
  postgresRoot?: string;
}

function isExecutable(file: string): boolean {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable `name` on PATH, like `command -v`. */
export function which(name: string, searchPath: string): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    if (dir === "") continue;
    const file = path.join(dir, name);
    if (isExecutable(file)) return file;
  }
  return undefined;
}

/** PostgreSQL's server binaries: Debian's versioned directory (newest first), else PATH. */
export function findPostgresBinDir(env: CheckEnv = {}): string | undefined {
  const root = env.postgresRoot ?? "/usr/lib/postgresql";
  let versions: string[] = [];
  try {
    versions = readdirSync(root).filter((v) => /^\d+$/.test(v));
  } catch {
    // Not a Debian layout: fall back to PATH below.
  }
  versions.sort((a, b) => Number(b) - Number(a));
  for (const version of versions) {
    const dir = path.join(root, version, "bin");
    if (existsSync(path.join(dir, "initdb"))) return dir;
  }
  for (const dir of (env.PATH ?? process.env.PATH ?? "").split(path.delimiter)) {
    if (dir && isExecutable(path.join(dir, "initdb")) && isExecutable(path.join(dir, "postgres"))) return dir;
  }
  return undefined;
}

function versionOutput(file: string, args: string[]): string {
  const result = spawnSync(file, args, { encoding: "utf8", timeout: 20_000 });
  return `${result.stdout ?? ""}${result.stderr ?? ""}`;
}

/** `openjdk version "17.0.15"` → 17; `java version "1.8.0_392"` → 8. */
export function javaMajor(output: string): number | undefined {
  const match = /version "(\d+)(?:\.(\d+))?/.exec(output);
  if (match === null) return undefined;
  const first = Number(match[1]);
  return first === 1 && match[2] !== undefined ? Number(match[2]) : first;
}

/** `go version go1.24.3 linux/amd64` → [1, 24]. */
export function goVersion(output: string): [number, number] | undefined {
  const match = /go version go(\d+)\.(\d+)/.exec(output);
  return match === null ? undefined : [Number(match[1]), Number(match[2])];
}

/** Checks each tool (presence, and version where the stack depends on one). Pure apart from running `--version`. */
export function checkTools(tools: Iterable<Tool>, env: CheckEnv = {}): MissingTool[] {
  const searchPath = env.PATH ?? process.env.PATH ?? "";
  const missing: MissingTool[] = [];
  for (const tool of new Set(tools)) {
    switch (tool) {
      case "java": {
        const javaHome = env.JAVA_HOME ?? (env.PATH === undefined ? process.env.JAVA_HOME : undefined);
        const file = javaHome ? path.join(javaHome, "bin", "java") : which("java", searchPath);
        if (file === undefined || !isExecutable(file)) {
          missing.push({ tool, problem: javaHome ? `no java in JAVA_HOME=${javaHome}` : "not on PATH" });
          break;
        }
        const major = javaMajor(versionOutput(file, ["-version"]));
        if (major === undefined || major < JAVA_MIN) {
          missing.push({ tool, problem: `${file} is Java ${major ?? "of unknown version"}` });
        }
        break;
      }
      case "go": {
        const file = which("go", searchPath);
        if (file === undefined) {
          missing.push({ tool, problem: "not on PATH" });
          break;
        }
        const version = goVersion(versionOutput(file, ["version"]));
        if (
          version === undefined ||
          version[0] < GO_MIN[0] ||
          (version[0] === GO_MIN[0] && version[1] < GO_MIN[1])
        ) {
          missing.push({ tool, problem: `${file} is go${version?.join(".") ?? " of unknown version"}` });
        }
        break;
      }
      case "postgresql": {
        const dir = findPostgresBinDir({ ...env, PATH: searchPath });
        const lacking =
          dir === undefined
            ? ["initdb"]
            : ["initdb", "postgres", "pg_isready", "psql"].filter((b) => !isExecutable(path.join(dir, b)));
        if (lacking.length > 0) {
          missing.push({
            tool,
            problem: dir === undefined ? "initdb not found" : `${lacking.join(", ")} missing in ${dir}`,
          });
        }
        break;
      }
      default:
        if (which(tool, searchPath) === undefined) missing.push({ tool, problem: "not on PATH" });
    }
  }
  return missing;
}

/** The one message: every missing tool, why the stack needs it, and how to install it. */
export function describeMissing(missing: readonly MissingTool[]): string {
  const lines = missing.map(({ tool, problem }) => {
    const spec = TOOLS[tool];
    const install = spec.apt ? `install: sudo apt-get install -y ${spec.apt}` : `install: ${spec.manual}`;
    return `  - ${spec.label} (${spec.why}): ${problem}; ${install}`;
  });
  const apt = missing.flatMap(({ tool }) => (TOOLS[tool].apt ? [TOOLS[tool].apt] : []));
  const all = apt.length > 1 ? [`  all apt ones at once: sudo apt-get install -y ${apt.join(" ")}`] : [];
  return [
    `the local stack needs ${missing.length === 1 ? "a program that is" : "programs that are"} missing (nothing was started):`,
    ...lines,
    ...all,
  ].join("\n");
}

function canUseApt(): boolean {
  return process.getuid?.() === 0 && which("apt-get", process.env.PATH ?? "") !== undefined;
}

/**
 * Fails with PREREQUISITE_MISSING, listing every missing tool, unless all are there. As root with apt (the
 * way the stack has always installed PostgreSQL), what apt provides is installed first, but only when apt
 * can provide everything missing: a run that would fail anyway should not spend minutes in apt.
 */
export async function ensureTools(tools: Iterable<Tool>, log: Log): Promise<void> {
  const wanted = [...new Set(tools)];
  let missing = checkTools(wanted);
  if (missing.length === 0) return;
  const packages = missing.flatMap(({ tool }) => (TOOLS[tool].apt ? [TOOLS[tool].apt] : []));
  if (packages.length === missing.length && canUseApt()) {
    const started = Date.now();
    log(`installing ${packages.join(" ")} from Debian (apt-get, as root) ...`);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    await runOrThrow("PREREQUISITE_MISSING", "apt-get update", "apt-get", ["update"], { env });
    await runOrThrow(
      "PREREQUISITE_MISSING",
      `apt-get install ${packages.join(" ")}`,
      "apt-get",
      ["install", "-y", "--no-install-recommends", ...packages],
      { env },
    );
    log(`installed ${packages.join(" ")} in ${((Date.now() - started) / 1000).toFixed(1)}s`);
    missing = checkTools(wanted);
    if (missing.length === 0) return;
  }
  throw new AgentmeterError("PREREQUISITE_MISSING", describeMissing(missing), {
    details: { missing: missing.map((m) => m.tool) },
  });
}
