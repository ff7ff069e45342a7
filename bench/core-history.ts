/**
 * `npm run bench:history -- [--ids 1000,10000,50000] [--batches 200]`: the billing core's cost per
 * batch on ONE account that remembers many records (dedupe ids within the horizon, correction memos
 * within the window), pure CPU, no server. The processor applies small batches (a fetch's records of
 * one partition), and `applyBatch` copies each account it touches once a call, so what a copy costs
 * against the account's history is what a busy account costs the processor per batch.
 *
 * For each count it builds the account from that many usage records (one chat, one a second, all
 * inside the dedupe horizon and the correction window), then times batches of one and of ten usage
 * records, each applied to the result of the last (as the processor's cache does). Then the same
 * account in the processor's own planning (`PartitionWorker.plan`, with stores in memory): one record
 * a batch: the core's apply and the plan around it (the projections, and the size check of the
 * account document, which bounded its whole state). Not a test: it prints what this machine does.
 */
import { parseArgs } from "node:util";
import { creditAuthorization } from "../pipeline/auth/signature.ts";
import type { AccountState } from "../pipeline/core/index.ts";
import {
  applyBatch,
  applyBatchInPlace,
  type BillingState,
  parseBillingConfig,
} from "../pipeline/core/index.ts";
import { createLogger } from "../pipeline/log.ts";
import type { InputMessage } from "../pipeline/processor/admit.ts";
import { PartitionWorker } from "../pipeline/processor/partition-worker.ts";
import type { DocRef, LoadedDoc } from "../pipeline/processor/ports.ts";
import { accountKeyOf, type InputRecord, type InputRecordJson, inputRecordSchema } from "../schemas/index.ts";

const { values } = parseArgs({
  options: {
    ids: { type: "string", default: "1000,10000,50000" },
    batches: { type: "string", default: "200" },
  },
});
const idCounts = values.ids.split(",").map(Number);
const batches = Number(values.batches);
if (
  idCounts.some((n) => !Number.isSafeInteger(n) || n <= 0) ||
  !Number.isSafeInteger(batches) ||
  batches <= 0
) {
  process.stderr.write(
    "bench/core-history: --ids is a list of positive integers, --batches a positive integer\n",
  );
  process.exit(2);
}

const T0 = Date.parse("2026-01-05T00:00:00Z");
const config = parseBillingConfig({
  app_trial_tokens: { default: 1_000_000_000 },
  dedupe: { max_entries: 1_000_000 },
  corrections: { max_remembered: 1_000_000 },
});
let nextId = 0;

function usage(second: number): InputRecord {
  return inputRecordSchema.parse(usageJson(second));
}

function usageJson(second: number): InputRecordJson {
  return {
    type: "usage",
    record_id: `u-${nextId++}`,
    level: "app_usage",
    enterprise_id: "bench_app",
    mozaiks_user_id: "bench_creator",
    platform_user_id: "bench_user",
    workflow_type: "chat",
    workflow_name: "bench",
    session_id: "sess-1",
    chat_id: "chat-1",
    agent_usage: { Agent: { prompt_tokens: 10, completion_tokens: 10 } },
    occurred_at: new Date(T0 + second * 1000).toISOString(),
  };
}

function fmt(ms: number): string {
  return ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`;
}

process.stdout.write(`bench/core-history: ${batches} batches a figure, Node ${process.version}\n`);
// Warm-up (not printed): the JIT compiles the apply path before the first figure.
run(1_000, false);
for (const ids of idCounts) run(ids, true);

function run(ids: number, print: boolean): void {
  let second = 0;
  const history = Array.from({ length: ids }, () => ({ record: usage(second++) }));
  const built: BillingState = { accounts: {} };
  applyBatchInPlace(built, history, config);
  for (const size of [1, 10]) {
    let state = built;
    const records = Array.from({ length: batches }, () =>
      Array.from({ length: size }, () => ({ record: usage(second++) })),
    );
    const started = process.cpuUsage();
    for (const batch of records) state = applyBatch(state, batch, config).state;
    const used = process.cpuUsage(started);
    const perBatchMs = (used.user + used.system) / 1000 / batches;
    if (!print) continue;
    process.stdout.write(
      `  ${String(ids).padStart(7)} records remembered, batches of ${String(size).padStart(2)}: ${fmt(perBatchMs).padStart(9)} CPU a batch, ${fmt(perBatchMs / size).padStart(9)} a record\n`,
    );
  }
}

/** Stores in memory: every load finds `body` for the account and nothing else; writes are dropped. */
function memoryStore(body?: AccountState) {
  return {
    refOf: (...parts: unknown[]): DocRef => ({ namespace: "bench", id: JSON.stringify(parts) }),
    legacyRefOf: (): DocRef => ({ namespace: "bench", id: "legacy" }),
    load: async (refs: readonly DocRef[]) =>
      new Map<DocRef, LoadedDoc<AccountState>>(refs.map((ref) => [ref, { body, wm: null }])),
    write: async () => {},
    prepareApp: async () => {},
    problemOf: () => undefined,
  };
}

async function planned(ids: number, batchCount: number): Promise<void> {
  let second = 0;
  const built: BillingState = { accounts: {} };
  applyBatchInPlace(
    built,
    Array.from({ length: ids }, () => ({ record: usage(second++) })),
    config,
  );
  const account = Object.values(built.accounts)[0]!;
  const worker = new PartitionWorker(
    "bench",
    0,
    {
      accounts: memoryStore(account) as never,
      ledgers: memoryStore() as never,
      registry: memoryStore() as never,
      knownShared: new Set(),
      costWatch: { refresh() {}, check: () => [] } as never,
      billing: config,
      maxRecordBytes: 64 * 1024,
      maxCachedAccounts: 1_000,
      maxStateMessageBytes: 900 * 1024,
      creditPolicy: creditAuthorization({}),
      logger: createLogger("silent"),
      now: () => new Date(T0),
      applyFailures: { open: true },
    },
    { source: "bench", partitionCounts: [1] },
  );
  let offset = 0;
  const message = (): InputMessage => {
    const json = usageJson(second++);
    return {
      offset: String(offset++),
      key: Buffer.from(accountKeyOf(json as never)),
      value: Buffer.from(JSON.stringify(json)),
      timestamp: String(Date.parse(json.occurred_at as string)),
    };
  };
  await worker.plan([message()]); // loads the account
  const started = process.cpuUsage();
  for (let i = 0; i < batchCount; i++) {
    const plan = await worker.plan([message()]);
    if (plan.stats.applied !== 1)
      throw new Error(`bench/core-history: a record was not applied (${JSON.stringify(plan.stats)})`);
  }
  const used = process.cpuUsage(started);
  process.stdout.write(
    `  ${String(ids).padStart(7)} records remembered: ${fmt((used.user + used.system) / 1000 / batchCount).padStart(9)} CPU a batch\n`,
  );
}

process.stdout.write("the processor's plan() of one-record batches on that account (stores in memory)\n");
for (const ids of idCounts) await planned(ids, Math.min(batches, 100));
