/**
 * `npm run bench:core [-- --records N --batch B --no-profile]` (billing rules from
 * AGENTMETER_BILLING_CONFIG, else the defaults): the billing core and the decoder, pure
 * CPU, no server. On one generated stream (the simulate workload: both levels, about three agents a usage
 * record, credits and sessions) it times each stage on its own, in records per CPU-second
 * (process.cpuUsage: user + system of this process):
 *   - JSON parse (bytes to text to JSON.parse, as decodeRecord does);
 *   - schema validation of the parsed JSON: zod alone (inputRecordSchema.safeParse), and what decodeRecord
 *     runs (fastInputRecord, zod when it defers), then decodeRecord (parse + validate); the same two on
 *     hold and release records (generated apart: the workload makes none);
 *   - key and id checks (accountKeyOf against the message key, the key's murmur2 partition);
 *   - admitMessage, the processor's and the audit's gate (decode, key, partition, signature policy);
 *   - applyBatch over about 1,000 and about 100,000 accounts, as the processor calls it: the accounts
 *     are held in a Map (the processor's account cache), each batch of B records (a processor fetch is
 *     about 6,000 records of a partition) gets a state of the accounts it touches, and the accounts it
 *     returns go back into the Map; each record carries a seq and a log time;
 *   - decode + validate + apply, the figure the processor pays per record; and the same with
 *     applyBatchInPlace, the audit's and `compute`'s apply (no copy of the accounts it changes);
 *   - output encoding: budget events and budget states as JSON, ClickHouse rows (usage events and
 *     session summaries, the sinks' row builders, as JSON), MongoDB documents (BSON size of each
 *     account as the store writes it).
 * After one untimed warm-up of decode + apply (so the JIT has compiled them), each stage runs on the
 * whole stream, repeated until it has used at least half a CPU-second, after an untimed full garbage
 * collection (a stage that ran after the 100,000-account ones paid for their garbage: decode +
 * applyBatch over 1,000 accounts measured 48 µs a record, more than over 100,000). Then a
 * child process runs decode + validate + apply (1,000 accounts) under `node --cpu-prof`, on messages
 * this process wrote to a temporary directory, and the top functions by self time are printed (the
 * profile is parsed here and the directory removed). Not a test: it prints what
 * this machine does; on a shared machine run it twice.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { BSON } from "mongodb";
import { creditAuthorization } from "../pipeline/auth/signature.ts";
import { cloneAccount } from "../pipeline/core/account.ts";
import {
  type AccountState,
  applyBatch,
  applyBatchInPlace,
  type BillingState,
  budgetStateOf,
  type SequencedOutput,
  type SequencedRecord,
} from "../pipeline/core/index.ts";
import { admitMessage, type InputMessage } from "../pipeline/processor/admit.ts";
import { isKeyPartition, partitionForKey } from "../pipeline/processor/partitioning.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";
import { generateWorkload } from "../pipeline/simulate/workload.ts";
import {
  accountKeyOf,
  bigintReplacer,
  DEFAULT_MAX_RECORD_BYTES,
  decodeRecord,
  fastInputRecord,
  inputRecordSchema,
} from "../schemas/index.ts";
import { sessionSummaryRow } from "../sinks/clickhouse/session-summaries.ts";
import { usageEventRow } from "../sinks/clickhouse/usage-events.ts";
import { toStoredAccount } from "../sinks/mongo/account-codec.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "100000" },
    batch: { type: "string", default: "5000" },
    "no-profile": { type: "boolean", default: false },
    /** Internal: the child of the profile run (decode + validate + apply of the messages in this file). */
    "profile-child": { type: "string" },
  },
});
const RECORDS = Number(values.records);
const BATCH = Number(values.batch);
if (!Number.isSafeInteger(RECORDS) || RECORDS <= 0 || !Number.isSafeInteger(BATCH) || BATCH <= 0) {
  process.stderr.write("bench/core: --records and --batch must be positive integers\n");
  process.exit(2);
}

const PARTITIONS = 12;
const START_AT = "2026-01-05T09:00:00.000Z";
// AGENTMETER_BILLING_CONFIG as every runtime reads it (for example corrections off, to price what the
// correction memos cost); the defaults when unset.
const config = loadBillingConfig({ AGENTMETER_BILLING_CONFIG: process.env.AGENTMETER_BILLING_CONFIG });
const rules = {
  maxRecordBytes: DEFAULT_MAX_RECORD_BYTES,
  partitionCounts: [PARTITIONS],
  creditPolicy: creditAuthorization({}),
};

/** One message of the stream, as the processor receives it. */
type Message = InputMessage & { partition: number; keyText: string; logTimeMs: number };

function stream(records: number, apps: number, usersPerApp: number, runId: string): Message[] {
  const messages: Message[] = [];
  let offset = 0;
  for (const json of generateWorkload({ records, apps, usersPerApp, startAt: START_AT, runId, seed: 7 })) {
    const key = accountKeyOf(json);
    const logTimeMs = Date.parse(json.occurred_at);
    messages.push({
      offset: String(offset++),
      key: Buffer.from(key),
      value: Buffer.from(JSON.stringify(json)),
      timestamp: String(logTimeMs),
      partition: partitionForKey(key, PARTITIONS),
      keyText: key,
      logTimeMs,
    });
  }
  return messages;
}

/** Parsed hold and release records (two holds to a release), both levels, as the SDK writes them. */
function holdAndReleaseRecords(count: number): unknown[] {
  const records: unknown[] = [];
  for (let i = 0; i < count; i++) {
    const app = i % 2 === 0;
    const ids = {
      level: app ? "app_usage" : "platform",
      enterprise_id: `app-${i % 10}`,
      mozaiks_user_id: `creator-${i % 10}`,
      ...(app ? { platform_user_id: `user-${i % 100}` } : {}),
    };
    const at = new Date(Date.parse(START_AT) + i * 10).toISOString();
    records.push(
      i % 3 === 2
        ? {
            type: "release",
            schema_version: 1,
            record_id: `r-${i}`,
            ...ids,
            hold_id: `h-${i - 1}`,
            occurred_at: at,
          }
        : {
            type: "hold",
            schema_version: 1,
            record_id: `h-${i}`,
            ...ids,
            chat_id: `chat-${i % 50}`,
            hold_id: `h-${i}`,
            tokens: 1_500 + i,
            expires_at: new Date(Date.parse(at) + 300_000).toISOString(),
            occurred_at: at,
          },
    );
  }
  return JSON.parse(JSON.stringify(records)) as unknown[];
}

function decodeAll(messages: readonly Message[]): SequencedRecord<number>[] {
  return messages.map((message, seq) => {
    const decoded = decodeRecord(message.value!, { maxBytes: DEFAULT_MAX_RECORD_BYTES });
    if (!decoded.ok) throw new Error(`generated record ${seq} does not decode: ${decoded.reason}`);
    return { record: decoded.record, seq, logTimeMs: message.logTimeMs };
  });
}

/** The accounts in memory, as the processor's cache holds them. */
type Accounts = Map<string, AccountState>;

/** One applyBatch call as the processor makes it: a state of the touched accounts, results written back. */
function applyToCache(
  accounts: Accounts,
  batch: readonly SequencedRecord<number>[],
): SequencedOutput<number>[] {
  const state: BillingState = { accounts: {} };
  for (const { record } of batch) {
    const key = accountKeyOf(record);
    const account = accounts.get(key);
    if (account !== undefined) state.accounts[key] = account;
  }
  const result = applyBatch(state, batch, config);
  for (const key of Object.keys(result.state.accounts)) accounts.set(key, result.state.accounts[key]!);
  return result.outputs;
}

function applyAll(
  start: Accounts,
  records: readonly SequencedRecord<number>[],
  keep?: SequencedOutput<number>[],
): Accounts {
  const accounts = new Map(start);
  for (let i = 0; i < records.length; i += BATCH) {
    const outputs = applyToCache(accounts, records.slice(i, i + BATCH));
    if (keep !== undefined) for (const output of outputs) keep.push(output);
  }
  return accounts;
}

/** Decodes the messages batch by batch (B at a time) and hands each batch of records to `apply`. */
function decodeInBatches(
  messages: readonly Message[],
  apply: (batch: SequencedRecord<number>[]) => void,
): void {
  for (let i = 0; i < messages.length; i += BATCH) {
    const batch: SequencedRecord<number>[] = [];
    const end = Math.min(messages.length, i + BATCH);
    for (let j = i; j < end; j++) {
      const decoded = decodeRecord(messages[j]!.value!, { maxBytes: DEFAULT_MAX_RECORD_BYTES });
      if (decoded.ok) batch.push({ record: decoded.record, seq: j, logTimeMs: messages[j]!.logTimeMs });
    }
    apply(batch);
  }
}

function decodeAndApply(start: Accounts, messages: readonly Message[]): Accounts {
  const accounts = new Map(start);
  decodeInBatches(messages, (batch) => applyToCache(accounts, batch));
  return accounts;
}

/** The audit's recompute: one state it keeps, changed in place, whole batches of B records. */
function decodeAndApplyInPlace(state: BillingState, messages: readonly Message[]): void {
  decodeInBatches(messages, (batch) => applyBatchInPlace(state, batch, config));
}

/** A state of copies of the accounts, for a run that changes them in place (cloneAccount copies what the rules write). */
function stateOf(accounts: Accounts): BillingState {
  const state: BillingState = { accounts: {} };
  for (const [key, account] of accounts) state.accounts[key] = cloneAccount(account);
  return state;
}

function cpuMs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
}

type Figure = { stage: string; items: number; unit: string; cpuMs: number; wallMs: number; runs: number };
const figures: Figure[] = [];

/**
 * Runs `run` (which handles `items` items) until it has used 500 CPU-ms, at least once. `prepare`, if
 * given, runs before each run and its time is left out.
 */
function time(stage: string, items: number, run: () => void, unit = "records", prepare?: () => void): void {
  // The garbage earlier stages left is collected before the clock starts (a stage pays for its own),
  // and V8's background threads are given time to finish sweeping, which the clock would count.
  collectGarbage();
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 300);
  let runs = 0;
  let used = 0;
  let excludedCpu = 0;
  let excludedWall = 0;
  const wallStart = performance.now();
  const cpuStart = process.cpuUsage();
  do {
    if (prepare !== undefined) {
      const cpu = process.cpuUsage();
      const wall = performance.now();
      prepare();
      excludedCpu += cpuMs(cpu);
      excludedWall += performance.now() - wall;
    }
    run();
    runs++;
    used = cpuMs(cpuStart) - excludedCpu;
  } while (used < 500);
  const figure = {
    stage,
    items: items * runs,
    unit,
    cpuMs: used,
    wallMs: performance.now() - wallStart - excludedWall,
    runs,
  };
  figures.push(figure);
  const rate = (figure.items / figure.cpuMs) * 1000;
  const perItem = (figure.cpuMs * 1000) / figure.items;
  process.stdout.write(
    `  ${stage.padEnd(52)} ${Math.round(rate).toLocaleString("en-US").padStart(11)} ${unit}/CPU-s  ${perItem.toFixed(2).padStart(7)} µs  (${runs} run${runs > 1 ? "s" : ""}, ${(figure.cpuMs / 1000).toFixed(2)} CPU-s, ${(figure.wallMs / 1000).toFixed(2)} s wall)\n`,
  );
}

// A full collection on demand, without --expose-gc on the command line (the flag, then the function
// from a fresh context, as V8 exposes it).
setFlagsFromString("--expose-gc");
const collectGarbage = runInNewContext("gc") as () => void;

function accountsOf(accounts: Accounts): number {
  return accounts.size;
}

const NONE: Accounts = new Map();

if (values["profile-child"] !== undefined) {
  // The profiled loop: decode + validate + apply over about 1,000 accounts, on the parent's messages
  // (one a line: log time, tab, JSON), so generating them is not in the profile.
  const messages = readFileSync(values["profile-child"], "utf8")
    .split("\n")
    .filter((line) => line !== "")
    .map((line, offset): Message => {
      const tab = line.indexOf("\t");
      const logTimeMs = Number(line.slice(0, tab));
      return {
        offset: String(offset),
        key: null,
        value: Buffer.from(line.slice(tab + 1)),
        partition: 0,
        keyText: "",
        logTimeMs,
      };
    });
  const started = process.cpuUsage();
  while (cpuMs(started) < 5000) decodeAndApply(NONE, messages);
  process.exit(0);
}

process.stdout.write(
  `bench/core: ${RECORDS.toLocaleString("en-US")} records a stream, applyBatch in batches of ${BATCH.toLocaleString("en-US")}, Node ${process.version}\n`,
);
const small = stream(RECORDS, 10, 100, "k1");
const bytes = small.reduce((sum, message) => sum + message.value!.byteLength, 0);
const types = new Map<string, number>();
const parsed = small.map((message) => JSON.parse(message.value!.toString("utf8")) as { type: string });
for (const json of parsed) types.set(json.type, (types.get(json.type) ?? 0) + 1);
process.stdout.write(
  `stream 1: 10 apps x 100 users, ${[...types].map(([type, n]) => `${n} ${type}`).join(", ")}, ${Math.round(bytes / small.length)} bytes a record\n\n`,
);

// Warm-up (not timed): the JIT compiles the decode and apply paths before any stage is timed.
decodeAndApply(NONE, small.slice(0, 10_000));

process.stdout.write("decode\n");
time("JSON parse (bytes -> text -> JSON.parse)", small.length, () => {
  for (const message of small) JSON.parse(message.value!.toString("utf8"));
});
/** Validation of parsed records two ways: zod alone, and what decodeRecord runs (zod when the fast path defers). */
function timeValidation(what: string, records: readonly unknown[]): void {
  time(`${what}, zod alone (safeParse)`, records.length, () => {
    for (const json of records) if (!inputRecordSchema.safeParse(json).success) throw new Error("invalid");
  });
  time(`${what}, fastInputRecord (zod if it defers)`, records.length, () => {
    for (const json of records)
      if (fastInputRecord(json) === undefined && !inputRecordSchema.safeParse(json).success)
        throw new Error("invalid");
  });
}
timeValidation("schema validation", parsed);
// Hold and release records (the simulate workload makes none): the SDK's reserve and release.
timeValidation("hold and release records", holdAndReleaseRecords(20_000));
time("decodeRecord (parse + validate)", small.length, () => {
  for (const message of small) decodeRecord(message.value!, { maxBytes: DEFAULT_MAX_RECORD_BYTES });
});
const decodedSmall = decodeAll(small);
time("key and id checks (account key, murmur2 partition)", small.length, () => {
  for (let i = 0; i < small.length; i++) {
    const message = small[i]!;
    const key = accountKeyOf(decodedSmall[i]!.record);
    if (message.key!.toString("utf8") !== key) throw new Error("key mismatch");
    if (!isKeyPartition(key, message.partition, rules.partitionCounts)) throw new Error("wrong partition");
  }
});
time("admitMessage (decode, key, partition, signature)", small.length, () => {
  for (const message of small)
    if (!admitMessage(message, message.partition, rules).ok) throw new Error("refused");
});

process.stdout.write("\napply (applyBatch)\n");
let stateSmall: Accounts = NONE;
time("applyBatch, 1,000 accounts", decodedSmall.length, () => {
  stateSmall = applyAll(NONE, decodedSmall);
});
process.stdout.write(`    accounts at the end: ${accountsOf(stateSmall).toLocaleString("en-US")}\n`);

// About 100,000 accounts: 100 apps x 1,000 users. A warm-up stream of 2N records (not timed) fills the
// state first, then the timed N records (a stream of their own, later ids and times) touch it.
const warmRecords = 2 * RECORDS;
const bigAll = stream(warmRecords + RECORDS, 100, 1_000, "k100");
const bigWarm = decodeAll(bigAll.slice(0, warmRecords));
const bigTimedMessages = bigAll.slice(warmRecords);
const bigTimed = decodeAll(bigTimedMessages);
const warmState = applyAll(NONE, bigWarm);
let stateBig = warmState;
time(
  `applyBatch, ~100,000 accounts (${accountsOf(warmState).toLocaleString("en-US")} at start)`,
  bigTimed.length,
  () => {
    stateBig = applyAll(warmState, bigTimed);
  },
);
process.stdout.write(`    accounts at the end: ${accountsOf(stateBig).toLocaleString("en-US")}\n`);

process.stdout.write("\ndecode + validate + apply (the target)\n");
time("decodeRecord + applyBatch, 1,000 accounts", small.length, () => {
  decodeAndApply(NONE, small);
});
time("decodeRecord + applyBatch, ~100,000 accounts", bigTimedMessages.length, () => {
  decodeAndApply(warmState, bigTimedMessages);
});
time("decodeRecord + applyBatchInPlace (audit), 1,000 accounts", small.length, () => {
  decodeAndApplyInPlace({ accounts: {} }, small);
});
let copyOfWarm: BillingState = { accounts: {} };
time(
  "decodeRecord + applyBatchInPlace (audit), ~100,000 accounts",
  bigTimedMessages.length,
  () => decodeAndApplyInPlace(copyOfWarm, bigTimedMessages),
  "records",
  () => {
    copyOfWarm = stateOf(warmState);
  },
);

process.stdout.write("\noutput encoding (from the 1,000-account run)\n");
const outputs: SequencedOutput<number>[] = [];
const finalSmall = applyAll(NONE, decodedSmall, outputs);
const events = outputs.filter((output) => output.kind === "budget_event");
const usage = outputs.filter((output) => output.kind === "usage_outcome");
const summaries = outputs.filter((output) => output.kind === "session_summary");
const accounts: AccountState[] = [...finalSmall.values()];
time(
  "budget events, JSON",
  events.length,
  () => {
    for (const event of events) JSON.stringify(event, bigintReplacer);
  },
  "events",
);
time(
  "budget states (budgetStateOf + JSON)",
  accounts.length,
  () => {
    for (const account of accounts) JSON.stringify(budgetStateOf(account));
  },
  "states",
);
const position = { topic: "bench", partition: 0, offset: "0" };
time(
  "ClickHouse usage rows (usageEventRow + JSON)",
  usage.length,
  () => {
    for (const outcome of usage) JSON.stringify(usageEventRow({ position, outcome }));
  },
  "rows",
);
time(
  "ClickHouse session summary rows (+ JSON)",
  summaries.length,
  () => {
    for (const summary of summaries) JSON.stringify(sessionSummaryRow(summary));
  },
  "rows",
);
// What the account store writes: the stored form (correction memos packed, sinks/mongo/account-codec.ts).
const storedBytes = (account: AccountState) => BSON.calculateObjectSize(toStoredAccount(account));
const bsonBytes = accounts.reduce((sum, account) => sum + storedBytes(account), 0);
time(
  `MongoDB account docs (BSON size, ${Math.round(bsonBytes / accounts.length)} bytes avg)`,
  accounts.length,
  () => {
    for (const account of accounts) storedBytes(account);
  },
  "docs",
);
process.stdout.write(
  `    per record of the stream: ${(events.length / small.length).toFixed(3)} budget events, ${(usage.length / small.length).toFixed(3)} usage rows, ${(summaries.length / small.length).toFixed(3)} summaries\n`,
);

if (!values["no-profile"]) {
  process.stdout.write(
    "\nprofile: decode + validate + apply, 1,000 accounts (node --cpu-prof, about 5 CPU-s; self time, module loading left out)\n",
  );
  const dir = mkdtempSync(join(tmpdir(), "agentmeter-bench-core-"));
  try {
    const input = join(dir, "messages.txt");
    writeFileSync(
      input,
      small
        .slice(0, 50_000)
        .map((message) => `${message.logTimeMs}\t${message.value!.toString("utf8")}\n`)
        .join(""),
    );
    execFileSync(
      process.execPath,
      [
        "--cpu-prof",
        "--cpu-prof-dir",
        dir,
        "--import",
        "tsx",
        fileURLToPath(import.meta.url),
        "--profile-child",
        input,
        "--batch",
        String(BATCH),
      ],
      { stdio: ["ignore", "ignore", "inherit"] },
    );
    const file = readdirSync(dir).find((name) => name.endsWith(".cpuprofile"));
    if (file === undefined) throw new Error("no .cpuprofile written");
    printProfile(JSON.parse(readFileSync(join(dir, file), "utf8")) as CpuProfile);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

type CpuProfile = {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  samples: number[];
  timeDeltas: number[];
};

/** Self time per function (name, file, line), from the samples: the top ten and their share. */
function printProfile(profile: CpuProfile): void {
  const nodeById = new Map(profile.nodes.map((node) => [node.id, node]));
  const self = new Map<string, number>();
  let total = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const node = nodeById.get(profile.samples[i]!);
    const delta = profile.timeDeltas[i] ?? 0;
    if (node === undefined) continue;
    // Loading and compiling the modules (tsx's hooks) is not the loop's work.
    if (/^node:internal\/modules\/|\/tsx\/dist\//.test(node.callFrame.url)) continue;
    // No line numbers: under tsx they are those of the transformed code, not of the source.
    const { functionName, url } = node.callFrame;
    const file = url === "" ? "" : url.replace(/^file:\/\//, "").replace(/^.*\/node_modules\//, "");
    const where = file === "" ? "" : ` ${file.replace(`${process.cwd()}/`, "")}`;
    const name = `${functionName || "(anonymous)"}${where}`;
    self.set(name, (self.get(name) ?? 0) + delta);
    total += delta;
  }
  const top = [...self].sort((a, b) => b[1] - a[1]).slice(0, 12);
  for (const [name, us] of top) {
    process.stdout.write(
      `  ${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${name}\n`,
    );
  }
}
