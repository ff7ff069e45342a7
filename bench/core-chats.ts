/**
 * `npm run bench:chats --  [--chats 1000,20000] [--records 2000]`: the billing core's
 * per-record cost on ONE account holding many open chats (a tenth of them paused), pure CPU, no
 * server. For each chat count it prints, in ms per record:
 *   - usage on open chats, account available (can continue) and exhausted (in overdraft);
 *   - records opening a new chat each (at `max_open_chats`, each first closes the oldest chat);
 *   - a top-up that makes the paused chats resumable (one scan, one event per paused chat);
 *   - the per-batch copy of the account (applyBatch copies each touched account once per call).
 * `max_open_chats` is raised to the chat count so the account can hold them. Not a test: it prints
 * what this machine does.
 */
import { parseArgs } from "node:util";
import {
  type AccountState,
  applyBatch,
  type BillingConfig,
  type BillingState,
  defaultBillingConfig,
  parseBillingConfig,
} from "../pipeline/core/index.ts";
import { type InputRecord, type InputRecordJson, inputRecordSchema } from "../schemas/index.ts";

const { values } = parseArgs({
  options: {
    chats: { type: "string", default: "1000,20000" },
    records: { type: "string", default: "2000" },
  },
});
const chatCounts = values.chats.split(",").map(Number);
const recordsPerRun = Number(values.records);
if (chatCounts.some((n) => !Number.isSafeInteger(n) || n <= 0) || !Number.isSafeInteger(recordsPerRun)) {
  process.stderr.write(
    "bench/core-chats: --chats is a list of positive integers, --records a positive integer\n",
  );
  process.exit(2);
}

const IDS = {
  level: "app_usage",
  enterprise_id: "bench_app",
  mozaiks_user_id: "bench_creator",
  platform_user_id: "bench_user",
} as const;
const KEY = "app:bench_app:bench_user";
const T0 = Date.parse("2026-01-05T00:00:00Z");
let nextId = 0;

function iso(seconds: number): string {
  return new Date(T0 + seconds * 1000).toISOString();
}

function parse(json: InputRecordJson): InputRecord {
  return inputRecordSchema.parse(json);
}

function session(chat: number, event: "start" | "pause", seconds: number): InputRecord {
  return parse({
    type: "session",
    record_id: `s-${nextId++}`,
    event,
    ...IDS,
    session_id: `sess-${chat}`,
    chat_id: `chat-${chat}`,
    workflow_name: "bench",
    occurred_at: iso(seconds),
  });
}

function usage(chat: number, seconds: number, tokens = 100): InputRecord {
  return parse({
    type: "usage",
    record_id: `u-${nextId++}`,
    ...IDS,
    workflow_type: "chat",
    workflow_name: "bench",
    session_id: `sess-${chat}`,
    chat_id: `chat-${chat}`,
    agent_usage: { Agent: { prompt_tokens: tokens, completion_tokens: tokens } },
    occurred_at: iso(seconds),
  });
}

function topUp(tokens: number, seconds: number): InputRecord {
  return parse({
    type: "credit",
    record_id: `c-${nextId++}`,
    kind: "top_up",
    ...IDS,
    tokens,
    occurred_at: iso(seconds),
  });
}

/** max_open_chats exists only after the hardening; the same bench runs on the code before it. */
function configFor(chats: number): BillingConfig {
  const input: Record<string, unknown> = {
    app_trial_tokens: { default: 1_000 },
    dedupe: { max_entries: 1_000_000 },
  };
  if ("max_open_chats" in defaultBillingConfig) input.max_open_chats = chats;
  return parseBillingConfig(input);
}

function apply(state: BillingState, records: readonly InputRecord[], cfg: BillingConfig): BillingState {
  return applyBatch(
    state,
    records.map((record) => ({ record })),
    cfg,
  ).state;
}

/** ms per record of one applyBatch call over `records` (best of 3, each on the same start state). */
function perRecord(state: BillingState, records: () => InputRecord[], cfg: BillingConfig): number {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    const batch = records();
    const started = performance.now();
    apply(state, batch, cfg);
    best = Math.min(best, (performance.now() - started) / batch.length);
  }
  return best;
}

function fmt(ms: number): string {
  return ms >= 1 ? `${ms.toFixed(2)} ms` : `${(ms * 1000).toFixed(1)} µs`;
}

for (const chats of chatCounts) {
  const cfg = configFor(chats);
  let clock = 0;
  // The account: `chats` open chats, every tenth paused by its user.
  const build: InputRecord[] = [];
  for (let chat = 0; chat < chats; chat++) build.push(session(chat, "start", clock++));
  for (let chat = 0; chat < chats; chat += 10) build.push(session(chat, "pause", clock++));
  const available = apply({ accounts: {} }, build, cfg);
  // The same account exhausted: usage past the 1,000-token trial puts it in overdraft.
  const exhausted = apply(available, [usage(1, clock++, 1_000)], cfg);
  const account = exhausted.accounts[KEY] as AccountState;
  const paused = Object.values(account.chats).filter((chat) => chat.paused).length;
  const start = clock + 60;

  const onOpenChats = () =>
    Array.from({ length: recordsPerRun }, (_, i) => usage((i * 7919) % chats, start + i));
  const onNewChats = () =>
    Array.from({ length: recordsPerRun }, (_, i) => usage(chats + nextId + i, start + i));
  const results = {
    "usage on open chats, account available": perRecord(available, onOpenChats, cfg),
    "usage on open chats, account exhausted": perRecord(exhausted, onOpenChats, cfg),
    "usage opening a new chat (at the cap: closes the oldest)": perRecord(available, onNewChats, cfg),
    "top-up making paused chats resumable": perRecord(exhausted, () => [topUp(1_000_000, start)], cfg),
    "one-record batch (includes the account copy)": perRecord(available, () => [usage(3, start)], cfg),
  };
  process.stdout.write(
    `\n${chats} open chats (${paused} paused), ${recordsPerRun} records per batch, max_open_chats ${"max_open_chats" in cfg ? chats : "n/a"}\n`,
  );
  for (const [what, ms] of Object.entries(results))
    process.stdout.write(`  ${what.padEnd(58)} ${fmt(ms)} per record\n`);
}
