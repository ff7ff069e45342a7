/**
 * `npm run bench:account-docs` (not a test): what the MongoDB server (FerretDB over PostgreSQL here)
 * spends to rewrite one account document, by how many dedupe ids and correction memos it holds, with
 * the dedupe ids as the core keeps them (a map: one field per id) and as account-codec.ts stores them
 * (`dedupe.seen_packed`, one string). The account is built by the billing core from N usage records of
 * one end user; each document is replaced whole, as a write-behind cycle does.
 * BENCH_IDS (200,1000,5000) and BENCH_DOCS (50) choose. Runs on MONGODB_URI or the local stack, in a
 * database of its own, dropped at the end.
 */
import { MongoClient } from "mongodb";
import { applyBatch, emptyState, parseBillingConfig } from "../pipeline/core/index.ts";
import { type UsageRecord, usageRecordSchema } from "../schemas/index.ts";
import { toStoredAccount } from "../sinks/mongo/account-codec.ts";
import { benchServers } from "./namespace.ts";
import { allProcessesCpu } from "./proc-cpu.ts";

const SIZES = (process.env.BENCH_IDS ?? "200,1000,5000").split(",").map(Number);
const DOCS = Number(process.env.BENCH_DOCS ?? 50);
const fmt = (n: number, digits = 1) => n.toLocaleString("en-US", { maximumFractionDigits: digits });

/** CPU seconds so far of every process whose name is one of `names`. */
function cpuOf(names: readonly string[]): number {
  let total = 0;
  for (const { name, seconds } of allProcessesCpu()) if (names.includes(name)) total += seconds;
  return total;
}

/** One end user's account after `n` usage records (each remembered for dedupe and for corrections). */
function accountAfter(n: number) {
  const records: UsageRecord[] = [];
  for (let i = 0; i < n; i++)
    records.push(
      usageRecordSchema.parse({
        type: "usage",
        record_id: `01a23c75-1508-7391-b1d5-${String(i).padStart(12, "0")}`,
        level: "app_usage",
        enterprise_id: "bench-app",
        mozaiks_user_id: "bench-creator",
        platform_user_id: "bench-user",
        workflow_type: "chat_interaction",
        workflow_name: "bench",
        session_id: `s-${i % 5}`,
        chat_id: `c-${i % 5}`,
        agent_usage: { Agent: { prompt_tokens: 300, completion_tokens: 100 } },
        occurred_at: new Date(Date.parse("2026-12-01T00:00:00Z") + i * 1_000).toISOString(),
      }),
    );
  const billing = parseBillingConfig({ app_trial_tokens: { default: 1_000_000_000 } });
  const { state } = applyBatch(
    emptyState(),
    records.map((record) => ({ record })),
    billing,
  );
  return Object.values(state.accounts)[0]!;
}

const STORES = ["ferretdb", "postgres", "mongod"];

async function main(): Promise<void> {
  const { MONGODB_URI } = await benchServers();
  const client = await MongoClient.connect(MONGODB_URI, { useBigInt64: true });
  const db = client.db(`bench_account_docs_${Date.now().toString(36)}`);
  console.log(
    `bench:account-docs: ${DOCS} account documents replaced 5 times each, by dedupe ids held; server CPU from /proc (${STORES.join(", ")})`,
  );
  try {
    for (const ids of SIZES) {
      const account = accountAfter(ids);
      const packed = toStoredAccount(account) as Record<string, unknown>;
      // The dedupe ids as a map (the form before seen_packed); the memos packed in both.
      const asMap = { ...packed, dedupe: account.dedupe };
      const figures: string[] = [];
      for (const [form, body] of [
        ["ids as a map", asMap],
        ["ids packed", packed],
      ] as const) {
        const collection = db.collection(`ids${ids}_${form.replace(/ /g, "_")}`);
        await collection.insertMany(
          Array.from({ length: DOCS }, (_, i) => ({ ...body, _id: `u${i}` as never })),
        );
        const cpuBefore = cpuOf(STORES);
        const started = performance.now();
        for (let round = 0; round < 5; round++)
          for (let i = 0; i < DOCS; i += 10)
            await collection.bulkWrite(
              Array.from({ length: Math.min(10, DOCS - i) }, (_, k) => ({
                replaceOne: { filter: { _id: `u${i + k}` as never }, replacement: { ...body, round } },
              })),
            );
        const replaces = DOCS * 5;
        const cpuMs = ((cpuOf(STORES) - cpuBefore) * 1000) / replaces;
        const wallMs = (performance.now() - started) / replaces;
        figures.push(`${form}: ${fmt(cpuMs)} ms server CPU, ${fmt(wallMs)} ms wall`);
        await collection.drop();
      }
      console.log(`  ${fmt(ids, 0)} ids (${fmt(ids, 0)} memos): per replace, ${figures.join("; ")}`);
    }
  } finally {
    await db.dropDatabase().catch(() => undefined);
    await client.close();
  }
}

await main();
