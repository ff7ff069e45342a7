/**
 * `node --import tsx bench/profile-summary.ts <dir or .cpuprofile> [--all]`: where a `node --cpu-prof`
 * run of the processor spent its CPU. Made for
 *
 *   BENCH_ONLY=1k node --cpu-prof --cpu-prof-dir=/tmp/prof --import tsx bench/processor.ts
 *   node --import tsx bench/profile-summary.ts /tmp/prof
 *
 * bench/processor.ts, when it runs under --cpu-prof, writes `bench-window-<pid>.json` into the profile
 * directory: the monotonic time span of its first end-to-end run (processor start to the last record
 * durable). Only samples inside that span count, so generating and producing the records and the raw
 * consume run are left out; `--all` counts the whole profile. What is left still includes the bench's own
 * wait loop (negligible) and nothing else: the processor runs in the benchmark's process.
 *
 * Self time as in bench/core.ts's profile summary (same module-loading filter, no line numbers: under tsx
 * they are the transformed code's), then grouped: a sample goes to the module of its innermost frame that
 * has one (a builtin like JSON.parse or a node:internal socket write is charged to its caller's module),
 * and the groups are summed into the decision path and the cycle writes.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export type CpuProfile = {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    children?: number[];
  }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
};

/** The span of the profile to count, in the profile's clock (µs, CLOCK_MONOTONIC as process.hrtime). */
export type Window = { startUs: number; endUs: number; records?: number };

/** The groups, in print order, and which side of the processor each belongs to. */
const GROUPS = [
  ["decode/validate (schemas, zod, admit)", "decision"],
  ["core apply (pipeline/core)", "decision"],
  ["planning (plan, projections, partition memory)", "decision"],
  ["processor loop (processor, partition worker)", "decision"],
  ["kafka client (kafkajs: fetch, publish, commit)", "decision"],
  ["write-behind stage and flush order", "cycle"],
  ["mongo driver (mongodb, bson, sinks/mongo)", "cycle"],
  ["clickhouse client", "cycle"],
  ["logging and metrics (pino, prom-client)", "other"],
  ["bench's own code (workload, producer, wait loop)", "bench"],
  ["node I/O with no caller on the stack (sockets, timers, streams)", "other"],
  ["garbage collection", "other"],
  ["V8/native outside JS ((program))", "other"],
  ["other JS", "other"],
] as const;

type Group = (typeof GROUPS)[number][0];

function groupOfUrl(url: string): Group | undefined {
  if (url === "" || url.startsWith("node:")) return undefined;
  if (/\/node_modules\/(zod)\//.test(url) || /\/schemas\//.test(url) || /processor\/admit\.ts/.test(url))
    return "decode/validate (schemas, zod, admit)";
  if (/\/node_modules\/kafkajs\//.test(url) || /\/sinks\/kafka\//.test(url))
    return "kafka client (kafkajs: fetch, publish, commit)";
  if (/\/node_modules\/(mongodb|bson)\//.test(url) || /\/sinks\/mongo\//.test(url))
    return "mongo driver (mongodb, bson, sinks/mongo)";
  if (/\/node_modules\/@clickhouse\//.test(url) || /\/sinks\/clickhouse\//.test(url))
    return "clickhouse client";
  if (
    /\/node_modules\/(pino|prom-client|thread-stream|sonic-boom)/.test(url) ||
    /\/pipeline\/ops\//.test(url)
  )
    return "logging and metrics (pino, prom-client)";
  if (/\/pipeline\/core\//.test(url)) return "core apply (pipeline/core)";
  if (/\/processor\/(write-behind|flush|store-retry)\.ts/.test(url))
    return "write-behind stage and flush order";
  if (
    /\/processor\/(plan|plan-projections|partition-memory|pause-documents|hold-registry|tick-clock|cost-watch)\.ts/.test(
      url,
    )
  )
    return "planning (plan, projections, partition memory)";
  if (/\/pipeline\/(processor|runtime)\//.test(url) || /\/pipeline\/[^/]+\.ts$/.test(url))
    return "processor loop (processor, partition worker)";
  if (/\/bench\//.test(url) || /\/pipeline\/simulate\//.test(url))
    return "bench's own code (workload, producer, wait loop)";
  return "other JS";
}

export type Summary = {
  /** Busy CPU time counted (ms), idle left out. */
  busyMs: number;
  idleMs: number;
  byGroup: Map<Group, number>;
  top: { name: string; group: Group; ms: number }[];
  decisionMs: number;
  cycleMs: number;
  otherMs: number;
  benchMs: number;
};

export function summarize(profile: CpuProfile, window?: Window): Summary {
  const nodeById = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const groupOfNode = new Map<number, Group | "idle" | "loading">();
  const classify = (id: number): Group | "idle" | "loading" => {
    const known = groupOfNode.get(id);
    if (known !== undefined) return known;
    const node = nodeById.get(id)!;
    const { functionName, url } = node.callFrame;
    let group: Group | "idle" | "loading";
    if (functionName === "(idle)") group = "idle";
    else if (functionName === "(garbage collector)") group = "garbage collection";
    else if (functionName === "(program)") group = "V8/native outside JS ((program))";
    // Loading and compiling the modules (tsx's hooks) is not the processor's work.
    else if (/^node:internal\/modules\/|\/tsx\/dist\//.test(url)) group = "loading";
    else {
      const own = groupOfUrl(url);
      if (own !== undefined) group = own;
      else {
        const parent = parentOf.get(id);
        const up = parent === undefined ? undefined : classify(parent);
        group =
          up === undefined || up === "idle" || up === "loading" || up === "other JS"
            ? url.startsWith("node:") || url === ""
              ? "node I/O with no caller on the stack (sockets, timers, streams)"
              : "other JS"
            : up;
        if (up === "loading") group = "loading";
      }
    }
    groupOfNode.set(id, group);
    return group;
  };
  const byGroup = new Map<Group, number>();
  const self = new Map<string, { us: number; group: Group }>();
  let busy = 0;
  let idle = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i] ?? 0;
    at += delta;
    if (window !== undefined && (at < window.startUs || at > window.endUs)) continue;
    const id = profile.samples[i]!;
    const node = nodeById.get(id);
    if (node === undefined) continue;
    const group = classify(id);
    if (group === "idle") {
      idle += delta;
      continue;
    }
    if (group === "loading") continue;
    busy += delta;
    byGroup.set(group, (byGroup.get(group) ?? 0) + delta);
    const { functionName, url } = node.callFrame;
    const file = url === "" ? "" : url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "");
    const where = file === "" ? "" : ` ${file.replace(`${process.cwd()}/`, "")}`;
    const name = `${functionName || "(anonymous)"}${where}`;
    const entry = self.get(name) ?? { us: 0, group };
    entry.us += delta;
    self.set(name, entry);
  }
  const side = (which: string) =>
    GROUPS.filter(([, s]) => s === which).reduce((total, [g]) => total + (byGroup.get(g) ?? 0), 0) / 1000;
  return {
    busyMs: busy / 1000,
    idleMs: idle / 1000,
    byGroup: new Map([...byGroup].map(([g, us]) => [g, us / 1000])),
    top: [...self]
      .sort((a, b) => b[1].us - a[1].us)
      .slice(0, 15)
      .map(([name, { us, group }]) => ({ name, group, ms: us / 1000 })),
    decisionMs: side("decision"),
    cycleMs: side("cycle"),
    otherMs: side("other"),
    benchMs: side("bench"),
  };
}

/** The lines to print; `records` (durable in the window) gives µs per record. */
export function summaryLines(summary: Summary, records?: number): string[] {
  const pct = (ms: number) => `${((ms / summary.busyMs) * 100).toFixed(1).padStart(5)}%`;
  const per = (ms: number) =>
    records === undefined || records === 0
      ? ""
      : `  ${((ms * 1000) / records).toFixed(1).padStart(6)} µs/record`;
  const lines = [
    `busy CPU ${(summary.busyMs / 1000).toFixed(2)} s (idle ${(summary.idleMs / 1000).toFixed(2)} s left out)${records === undefined ? "" : `, ${records.toLocaleString("en-US")} records`}`,
    "by module (innermost frame with a module; builtins and node internals charged to their caller):",
  ];
  for (const [group] of GROUPS) {
    const ms = summary.byGroup.get(group) ?? 0;
    if (ms === 0) continue;
    lines.push(`  ${pct(ms)}  ${ms.toFixed(0).padStart(6)} ms${per(ms)}  ${group}`);
  }
  const shared = summary.otherMs;
  const attributed = summary.decisionMs + summary.cycleMs;
  // The rest (GC, sockets without a caller, native, logging; not the bench's own code) split in the
  // proportion of the two sides.
  const share = (ms: number) => (attributed === 0 ? 0 : ms + (shared * ms) / attributed);
  lines.push(
    `decision path (decode, apply, plan, loop, kafka): ${summary.decisionMs.toFixed(0)} ms${per(summary.decisionMs)}; ` +
      `cycle writes (stage, mongo, clickhouse): ${summary.cycleMs.toFixed(0)} ms${per(summary.cycleMs)}; ` +
      `unattributed (GC, I/O, native, logs): ${shared.toFixed(0)} ms${per(shared)}; the bench's own: ${summary.benchMs.toFixed(0)} ms`,
    `  with the unattributed split in proportion: decision ${share(summary.decisionMs).toFixed(0)} ms${per(share(summary.decisionMs))}, cycle writes ${share(summary.cycleMs).toFixed(0)} ms${per(share(summary.cycleMs))}`,
    "top functions by self time:",
  );
  for (const { name, group, ms } of summary.top)
    lines.push(`  ${pct(ms)}  ${ms.toFixed(0).padStart(6)} ms  ${name}  [${group.split(" (")[0]}]`);
  return lines;
}

/** The newest .cpuprofile of `path` (a directory) or `path` itself, and the bench's window for its pid. */
export function loadProfile(path: string): { file: string; profile: CpuProfile; window?: Window } {
  let file = path;
  let dir: string | undefined;
  if (statSync(path).isDirectory()) {
    dir = path;
    // The newest process's main thread (thread 0): worker threads (tsx's, pino's) write profiles too.
    const newest = readdirSync(path)
      .filter((name) => name.endsWith(".cpuprofile"))
      .map((name) => ({ name, at: statSync(join(path, name)).mtimeMs, main: name.split(".")[4] === "0" }))
      .sort((a, b) => Number(b.main) - Number(a.main) || b.at - a.at)[0];
    if (newest === undefined) throw new Error(`no .cpuprofile in ${path}`);
    file = join(path, newest.name);
  } else dir = path.replace(/\/[^/]*$/, "");
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  // CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile
  const pid = file.split("/").pop()!.split(".")[3];
  let window: Window | undefined;
  try {
    window = JSON.parse(readFileSync(join(dir, `bench-window-${pid}.json`), "utf8")) as Window;
  } catch {
    window = undefined;
  }
  return { file, profile, ...(window === undefined ? {} : { window }) };
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const path = process.argv[2];
  if (path === undefined) {
    process.stderr.write("usage: node --import tsx bench/profile-summary.ts <dir or .cpuprofile> [--all]\n");
    process.exit(2);
  }
  const { file, profile, window } = loadProfile(path);
  const used = process.argv.includes("--all") ? undefined : window;
  process.stdout.write(
    `${file}: ${used === undefined ? "the whole profile" : `the bench's first end-to-end run only (${((used.endUs - used.startUs) / 1e6).toFixed(1)} s of ${((profile.endTime - profile.startTime) / 1e6).toFixed(1)} s profiled)`}\n`,
  );
  for (const line of summaryLines(summarize(profile, used), used?.records)) process.stdout.write(`${line}\n`);
}
