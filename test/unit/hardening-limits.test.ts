/**
 * Issue 19's bounds on memory, document size and inserts, and the store-error classifier, at unit level
 * (no servers): the LRU cache of accounts (AGENTMETER_MAX_CACHED_ACCOUNTS), the account-document size
 * guard, the ClickHouse month split, which store errors are deterministic, and the dedupe cap's
 * once-per-account log and counter.
 */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ClickHouseError, parseError } from "@clickhouse/client";
import fc from "fast-check";
import kafkajs from "kafkajs";
import {
  BSON,
  MongoBulkWriteError,
  MongoInvalidArgumentError,
  MongoNetworkError,
  MongoNetworkTimeoutError,
  MongoServerError,
  MongoServerSelectionError,
} from "mongodb";
import { creditAuthorization } from "../../pipeline/auth/signature.ts";
import { loadConfig } from "../../pipeline/config.ts";
import {
  type AccountState,
  type BillingConfig,
  budgetStateOf,
  defaultBillingConfig,
  nextTimedChange,
} from "../../pipeline/core/index.ts";
import type { RevenueLedger } from "../../pipeline/core/revenue-ledger.ts";
import { AgentmeterError, isAgentmeterError } from "../../pipeline/errors.ts";
import { createLogger, type Logger } from "../../pipeline/log.ts";
import { DisabledMetrics, ProcessorMetrics } from "../../pipeline/ops/metrics.ts";
import { ApplyFailureBudget } from "../../pipeline/processor/apply-failures.ts";
import type { CostWatch } from "../../pipeline/processor/cost-watch.ts";
import {
  bucketOf,
  dueAccounts,
  emptyRegistry,
  type HoldRegistry,
  type HoldRegistryEntry,
  REGISTRY_BUCKETS,
  updateRegistry,
} from "../../pipeline/processor/hold-registry.ts";
import { type Owned, OwnedDocs, PartitionMemory } from "../../pipeline/processor/partition-memory.ts";
import {
  DEDUPE_NOTICES_MAX,
  type InputMessage,
  OncePerKey,
  PartitionWorker,
  type WorkerDeps,
} from "../../pipeline/processor/partition-worker.ts";
import {
  checkSizes,
  emptyPlan,
  type FlushPlan,
  MAX_ACCOUNT_DOC_BYTES,
} from "../../pipeline/processor/plan.ts";
import {
  type AccountAddress,
  type AccountStore,
  type DocRef,
  type HoldRegistryStore,
  type LedgerStore,
  type LoadedDoc,
  type PendingWrite,
  type PositionedOutcome,
  type SourcePartition,
  samePosition,
  type Watermark,
} from "../../pipeline/processor/ports.ts";
import { isDeterministicStoreError } from "../../pipeline/processor/store-errors.ts";
import { accountKeyOf, type SessionSummary, type UsageOutcome } from "../../schemas/index.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { MONTHS_PER_INSERT, monthRuns as runsByMonth } from "../../sinks/clickhouse/month-runs.ts";
import { appendSessionSummaries } from "../../sinks/clickhouse/session-summaries.ts";
import { BUGGY_MODEL, billingWithBug } from "../support/billing-bug.ts";
import { cloneState } from "../support/clone-state.ts";
import { accountOf, at, config, HUGE_PRICE_BOOK, run, usage } from "./builders.ts";

// kafkajs is CommonJS: Node sees its error classes only on the default export.
const {
  KafkaJSConnectionError,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
} = kafkajs;

const TOPIC = "agentmeter.usage";
const MIB = 1024 * 1024;

// ---------------------------------------------------------------------------------------------------
// A partition worker over in-memory stores (the ports of pipeline/processor/ports.ts), flushed by hand.

/** A watermarked store in memory: compare-and-set on the loaded position, like sinks/mongo. */
class MemoryStore<T> {
  readonly docs = new Map<string, { body: T; wm: Watermark }>();
  /** The ids of each load call, in order. */
  readonly loads: string[][] = [];
  /** While set, a load answers only once it resolves (a slow store). */
  gate: Promise<void> | undefined;

  async load(refs: readonly DocRef[]): Promise<Map<DocRef, LoadedDoc<T>>> {
    if (refs.length > 0) this.loads.push(refs.map((ref) => ref.id));
    await this.gate;
    const found = new Map<DocRef, LoadedDoc<T>>();
    for (const ref of refs) {
      const doc = this.docs.get(ref.id);
      found.set(
        ref,
        doc === undefined ? { body: undefined, wm: null } : { body: cloneState(doc.body), wm: { ...doc.wm } },
      );
    }
    return found;
  }

  async write(writes: readonly PendingWrite<T>[], at: SourcePartition): Promise<void> {
    for (const write of writes) {
      const stored = this.docs.get(write.ref.id)?.wm ?? null;
      if (!samePosition(stored, write.loaded))
        throw new AgentmeterError("OWNERSHIP_LOST", `${write.ref.id} moved since it was loaded`);
      this.docs.set(write.ref.id, {
        body: cloneState(write.body),
        wm: { topic: at.topic, partition: at.partition, offset: write.newWm },
      });
    }
  }
}

class MemoryAccounts extends MemoryStore<AccountState> implements AccountStore {
  refOf(address: AccountAddress): DocRef {
    return {
      namespace: "accounts",
      id: accountKeyOf({ ...address, platform_user_id: address.platform_user_id ?? undefined }),
    };
  }
  async prepareApp(): Promise<void> {}
  problemOf(): string | undefined {
    return undefined;
  }
}

class MemoryLedgers extends MemoryStore<RevenueLedger> implements LedgerStore {
  refOf(enterpriseId: string, source: string, partition: number): DocRef {
    return { namespace: "ledgers", id: `${enterpriseId}/${source}/${partition}` };
  }
}

class MemoryRegistry extends MemoryStore<HoldRegistry> implements HoldRegistryStore {
  refOf(source: string, partition: number, bucket: number): DocRef {
    return { namespace: "registry", id: `${source}/${partition}#${bucket}` };
  }

  legacyRefOf(source: string, partition: number): DocRef {
    return { namespace: "registry", id: `${source}/${partition}` };
  }
}

/** A real pino logger whose lines are kept, parsed. */
function capturingLogger(): {
  logger: Logger;
  lines: Array<{ level: number; msg: string; account?: string }>;
} {
  const lines: Array<{ level: number; msg: string; account?: string }> = [];
  const destination = {
    write(text: string) {
      lines.push(JSON.parse(text) as { level: number; msg: string });
      return true;
    },
  } as unknown as NodeJS.WritableStream;
  return { logger: createLogger("info", "hardening-limits", destination), lines };
}

/** One owned partition (0 of 1) of TOPIC, its stores in memory, and a flush that writes a plan to them. */
function partitionHarness(options: {
  maxCachedAccounts?: number;
  billing?: BillingConfig;
  logger?: Logger;
  applyFailures?: { open: boolean };
}) {
  const accounts = new MemoryAccounts();
  const ledgers = new MemoryLedgers();
  const registry = new MemoryRegistry();
  const deps: WorkerDeps = {
    accounts,
    ledgers,
    registry,
    knownShared: new Set(),
    costWatch: { refresh() {}, check: () => [] } as unknown as CostWatch,
    billing: options.billing ?? defaultBillingConfig,
    maxRecordBytes: 64 * 1024,
    maxCachedAccounts: options.maxCachedAccounts ?? 20_000,
    maxStateMessageBytes: 900 * 1024,
    creditPolicy: creditAuthorization({}),
    logger: options.logger ?? capturingLogger().logger,
    now: () => new Date(at(0)),
    applyFailures: options.applyFailures ?? { open: true },
  };
  let nextOffset = 0;
  let minute = 0;
  /** The next message of the partition: `record` at the next minute, under `key`. */
  const next = (key: string, record: (occurredAt: string) => Record<string, unknown>): InputMessage => {
    const occurredAt = at(minute++);
    return {
      offset: String(nextOffset++),
      key: Buffer.from(key),
      value: Buffer.from(JSON.stringify(record(occurredAt))),
      timestamp: String(Date.parse(occurredAt)),
    };
  };
  const endUser = (user: string) => ({
    level: "app_usage",
    enterprise_id: "app_456",
    mozaiks_user_id: "user_123",
    platform_user_id: user,
  });
  return {
    accounts,
    registry,
    /** A worker of this processor (the same deps: what a rebalance that gives the partition back makes). */
    worker: () => new PartitionWorker(TOPIC, 0, deps, { source: TOPIC, partitionCounts: [1] }),
    /** A usage record of app end user `user`, as the next message of the partition. */
    usage: (user: string, recordId: string): InputMessage =>
      next(`app:app_456:${user}`, (occurredAt) => ({
        type: "usage",
        record_id: recordId,
        ...endUser(user),
        workflow_type: "chat_interaction",
        workflow_name: "default",
        session_id: "sess-1",
        chat_id: "chat-1",
        agent_usage: { Agent: { prompt_tokens: 1, completion_tokens: 1 } },
        occurred_at: occurredAt,
      })),
    /** A 100-token hold of app end user `user`, expiring `minutes` after it is made. */
    hold: (user: string, recordId: string, minutes: number): InputMessage =>
      next(`app:app_456:${user}`, (occurredAt) => ({
        type: "hold",
        record_id: recordId,
        ...endUser(user),
        chat_id: "chat-1",
        hold_id: `hold-${recordId}`,
        tokens: 100,
        expires_at: new Date(Date.parse(occurredAt) + minutes * 60_000).toISOString(),
        occurred_at: occurredAt,
      })),
    /** A tick of the partition, `minutes` after the last record. */
    tick(recordId: string, minutes: number): InputMessage {
      minute += minutes;
      return next("tick:0:0", (occurredAt) => ({
        type: "tick",
        record_id: recordId,
        partition: 0,
        occurred_at: occurredAt,
      }));
    },
    /** Writes a plan as the synchronous flush does (ledgers, registry, then accounts) and tells the worker. */
    async flush(worker: PartitionWorker, plan: FlushPlan): Promise<void> {
      const where = { topic: plan.topic, partition: plan.partition };
      await ledgers.write(plan.ledgerWrites, where);
      await registry.write(plan.registryWrites, where);
      await accounts.write(plan.accountWrites, where);
      worker.durable(plan);
    },
  };
}

// ---------------------------------------------------------------------------------------------------

describe("bounded account cache (OwnedDocs.evict, AGENTMETER_MAX_CACHED_ACCOUNTS)", () => {
  const ref = (id: string): DocRef => ({ namespace: "accounts", id });
  const owned = (id: string, pendingWm?: bigint): Owned<string> => ({
    ref: ref(id),
    body: id,
    stored: null,
    pendingWm,
  });
  function docsOf(ids: string[], dirty: string[] = []): OwnedDocs<string> {
    const docs = new OwnedDocs<string>();
    for (const id of ids) docs.set(id, owned(id, dirty.includes(id) ? 7n : undefined));
    return docs;
  }
  const keysOf = (docs: OwnedDocs<string>, ids: string[]) => ids.filter((id) => docs.has(id));

  test("Given 5 clean accounts and a cap of 3, Then the 2 least recently used go, and each is forgotten", () => {
    const docs = docsOf(["a", "b", "c", "d", "e"]);
    docs.touch("a"); // used last: now the most recent
    docs.get("b"); // a read is not a use
    const forgotten: string[] = [];
    docs.evict(3, (key) => forgotten.push(key));
    assert.deepEqual(forgotten, ["b", "c"]);
    assert.equal(docs.size, 3);
    assert.deepEqual(keysOf(docs, ["a", "b", "c", "d", "e"]), ["a", "d", "e"]);
  });

  test("Given dirty accounts among the least recently used, Then they stay and the next clean ones go", () => {
    const docs = docsOf(["a", "b", "c", "d", "e"], ["a", "c"]);
    const forgotten: string[] = [];
    docs.evict(3, (key) => forgotten.push(key));
    assert.deepEqual(forgotten, ["b", "d"]);
    assert.deepEqual(keysOf(docs, ["a", "b", "c", "d", "e"]), ["a", "c", "e"]);
    assert.deepEqual(
      docs.pendingWrites().map((write) => write.ref.id),
      ["a", "c"],
    );
  });

  test("Given only dirty accounts over the cap, Then none is dropped (the cache stays over it until they are written)", () => {
    const docs = docsOf(["a", "b", "c"], ["a", "b", "c"]);
    const forgotten: string[] = [];
    docs.evict(1, (key) => forgotten.push(key));
    assert.deepEqual(forgotten, []);
    assert.equal(docs.size, 3);
  });

  test("Given a cache at or under the cap, Then nothing is dropped", () => {
    const docs = docsOf(["a", "b", "c"]);
    docs.evict(3, () => assert.fail("nothing to evict"));
    assert.equal(docs.size, 3);
  });

  test("PartitionMemory.durable: written accounts become clean and leave past the cap, their pause documents forgotten; an account a later plan touched stays", () => {
    const memory = new PartitionMemory(2);
    const ids = ["a", "b", "c", "d"];
    const all = new Map<string, Owned<AccountState>>();
    for (const [i, id] of ids.entries()) {
      const doc: Owned<AccountState> = { ref: ref(id), body: undefined, stored: null, pendingWm: BigInt(i) };
      memory.accounts.set(id, doc);
      memory.pauses.loaded(id, { "chat-1": {} });
      all.set(id, doc);
    }
    // A plan wrote all four; before it was durable a later plan touched "a" again (pending at 9).
    const writes = ids.map((id) => ({ ...pendingWriteOf(all.get(id)!), owner: all.get(id)! }));
    all.get("a")!.pendingWm = 9n;
    memory.durable(writes, { source: TOPIC, partition: 0 });
    assert.equal(memory.accounts.size, 2);
    assert.ok(memory.accounts.has("a"), "a is dirty: it stays");
    assert.ok(
      !memory.accounts.has("b") && !memory.accounts.has("c"),
      "b and c were the least recently used clean",
    );
    assert.ok(memory.accounts.has("d"));
    assert.deepEqual(all.get("d")!.stored, { topic: TOPIC, partition: 0, offset: 3n });
    assert.equal(
      memory.pauses.has("b", "chat-1"),
      false,
      "an evicted account's pause documents are forgotten",
    );
    assert.equal(memory.pauses.has("d", "chat-1"), true);
  });

  test("Given a cap of 2, When a batch touches 3 accounts, Then 2 stay cached; a dropped one is reloaded from its document on its next record and continues from it", async () => {
    const h = partitionHarness({ maxCachedAccounts: 2 });
    const worker = h.worker();
    const first = await worker.plan([h.usage("u1", "r-1"), h.usage("u2", "r-2"), h.usage("u3", "r-3")]);
    assert.deepEqual(first.deadLetters, []);
    assert.equal(worker.cachedAccounts, 3, "pending accounts are never dropped before they are written");
    await h.flush(worker, first);
    assert.equal(worker.cachedAccounts, 2, "past the cap the least recently used clean account leaves");
    assert.deepEqual(h.accounts.loads, [["app:app_456:u1", "app:app_456:u2", "app:app_456:u3"]]);

    // u3 and u2 are cached: no load. u1 was dropped: loaded again, from what was written.
    const second = await worker.plan([h.usage("u1", "r-4"), h.usage("u3", "r-5")]);
    assert.deepEqual(second.deadLetters, []);
    assert.deepEqual(h.accounts.loads.slice(1), [["app:app_456:u1"]]);
    const u1 = second.accountWrites.find((write) => write.ref.id === "app:app_456:u1")!;
    assert.equal(u1.body.tokens_used, 4, "the reloaded account goes on from its stored 2 tokens");
    assert.deepEqual([...u1.body.dedupe.seen.keys()].sort(), ["r-1", "r-4"]);
    assert.deepEqual(u1.loaded, { topic: TOPIC, partition: 0, offset: 0n });
    await h.flush(worker, second);
    assert.equal(worker.cachedAccounts, 2);

    // A re-sent r-1 for u1 is still a duplicate after the reload (its dedupe ids came back with it).
    const third = await worker.plan([h.usage("u2", "r-6"), h.usage("u1", "r-1")]);
    assert.equal(third.stats.duplicates, 1);
    assert.deepEqual(h.accounts.loads.slice(2), [["app:app_456:u2"]], "u2 was the one dropped last time");
  });

  test("Given a plan waiting for the stores, When an earlier plan becomes durable meanwhile and the cache is over its cap, Then the accounts the waiting plan found in memory stay and it plans without a reload", async () => {
    const h = partitionHarness({ maxCachedAccounts: 2 });
    const worker = h.worker();
    const first = await worker.plan([h.usage("u1", "r-1"), h.usage("u2", "r-2"), h.usage("u3", "r-3")]);
    // A write-behind stage plans the next batch before the first is written: u1 is in memory, u4 is not.
    let release!: () => void;
    h.accounts.gate = new Promise((resolve) => {
      release = resolve;
    });
    const waiting = worker.plan([h.usage("u1", "r-4"), h.usage("u4", "r-5")]);
    while (h.accounts.loads.length < 2) await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(h.accounts.loads[1], ["app:app_456:u4"], "the second plan is waiting for u4");
    // The first plan's cycle ends now: all three are clean, one over the cap; u1 is the least recently used.
    await h.flush(worker, first);
    release();
    const second = await waiting;
    assert.deepEqual(second.deadLetters, []);
    const u1 = second.accountWrites.find((write) => write.ref.id === "app:app_456:u1");
    assert.equal(u1?.body.tokens_used, 4, "u1 went on from memory");
    assert.deepEqual(h.accounts.loads.slice(2), [], "nothing was loaded again");
  });

  test("Given a tick due for an idle account in memory, When a cycle becomes durable while the tick's plan waits for the stores, Then the account stays and its hold expires at that tick", async () => {
    const h = partitionHarness({ maxCachedAccounts: 2 });
    const worker = h.worker();
    await h.flush(worker, await worker.plan([h.hold("u1", "r-1", 5)]));
    // u2 and u3 come after: u1 is now the least recently used, and the cache one over its cap once clean
    const busy = await worker.plan([h.usage("u2", "r-2"), h.usage("u3", "r-3")]);
    let release!: () => void;
    h.accounts.gate = new Promise((resolve) => {
      release = resolve;
    });
    const loadsBefore = h.accounts.loads.length;
    const waiting = worker.plan([h.tick("t-1", 10), h.usage("u4", "r-4")]);
    while (!h.accounts.loads.some((ids) => ids.includes("app:app_456:u4")))
      await new Promise((resolve) => setImmediate(resolve));
    await h.flush(worker, busy);
    release();
    const ticked = await waiting;
    assert.deepEqual(ticked.deadLetters, []);
    const u1 = ticked.accountWrites.find((write) => write.ref.id === "app:app_456:u1");
    assert.ok(u1 !== undefined, "the tick changed u1");
    assert.deepEqual(Object.keys(u1.body.holds ?? {}), [], "its hold expired at the tick");
    assert.deepEqual(h.accounts.loads.slice(loadsBefore), [["app:app_456:u4"]], "u1 went on from memory");
  });

  test("AGENTMETER_MAX_CACHED_ACCOUNTS: 20,000 by default, settable, at least 100", () => {
    assert.equal(loadConfig({}).AGENTMETER_MAX_CACHED_ACCOUNTS, 20_000);
    assert.equal(loadConfig({ AGENTMETER_MAX_CACHED_ACCOUNTS: "5000" }).AGENTMETER_MAX_CACHED_ACCOUNTS, 5000);
    assert.throws(() => loadConfig({ AGENTMETER_MAX_CACHED_ACCOUNTS: "0" }));
    assert.throws(() => loadConfig({ AGENTMETER_MAX_CACHED_ACCOUNTS: "99" }));
  });
});

function pendingWriteOf(owned: Owned<AccountState>): PendingWrite<AccountState> {
  return { ref: owned.ref, body: owned.body!, loaded: owned.stored, newWm: owned.pendingWm! };
}

// ---------------------------------------------------------------------------------------------------

describe("hold registry in buckets (hold-registry.ts)", () => {
  const users = Array.from({ length: 40 }, (_, i) => `u${i}`);
  const keyOf = (user: string) => `app:app_456:${user}`;
  const storedEntries = (h: ReturnType<typeof partitionHarness>) =>
    [...h.registry.docs.entries()].flatMap(([id, doc]) => doc.body.entries.map((entry) => ({ id, entry })));

  test("Given holds on many accounts, Then each bucket lists only its accounts, a batch writes only the buckets it changed, and a new owner's tick finds every account", async () => {
    const h = partitionHarness({});
    const worker = h.worker();
    const opened = await worker.plan(users.map((user, i) => h.hold(user, `r-${i}`, 5)));
    await h.flush(worker, opened);
    const stored = storedEntries(h);
    assert.equal(stored.length, users.length);
    for (const { id, entry } of stored) assert.equal(id, `${TOPIC}/0#${bucketOf(entry.account_key)}`);
    assert.equal(opened.registryWrites.length, new Set(users.map((user) => bucketOf(keyOf(user)))).size);
    // One more account: one bucket written, the others left as they are
    const one = await worker.plan([h.hold("late", "r-late", 5)]);
    assert.deepEqual(
      one.registryWrites.map((write) => write.ref.id),
      [`${TOPIC}/0#${bucketOf(keyOf("late"))}`],
    );
    await h.flush(worker, one);
    // A new owner (nothing in memory) ticks past every expiry: each hold expires and leaves the registry
    const owner = h.worker();
    const ticked = await owner.plan([h.tick("t-1", 10)]);
    assert.deepEqual(
      ticked.accountWrites.map((write) => write.ref.id).sort(),
      [...users, "late"].map(keyOf).sort(),
    );
    for (const write of ticked.accountWrites)
      assert.deepEqual(Object.keys(write.body.holds ?? {}), [], write.ref.id);
    await h.flush(owner, ticked);
    assert.deepEqual(storedEntries(h), []);
  });

  test("Given the one registry document a processor before buckets wrote, Then a new owner's tick finds its accounts, and writes buckets, never that document", async () => {
    const h = partitionHarness({});
    const worker = h.worker();
    await h.flush(worker, await worker.plan(users.slice(0, 5).map((user, i) => h.hold(user, `r-${i}`, 5))));
    // As the registry was stored before: one document of every entry, no buckets
    const legacy: HoldRegistry = { partition: 0, entries: storedEntries(h).map(({ entry }) => entry) };
    const legacyWm = { topic: TOPIC, partition: 0, offset: 4n };
    h.registry.docs.clear();
    h.registry.docs.set(`${TOPIC}/0`, { body: legacy, wm: legacyWm });
    const owner = h.worker();
    const ticked = await owner.plan([h.tick("t-1", 10)]);
    assert.equal(ticked.accountWrites.length, 5, "every account the old document listed");
    assert.ok(ticked.registryWrites.every((write) => write.ref.id.includes("#")));
    await h.flush(owner, ticked);
    assert.deepEqual(h.registry.docs.get(`${TOPIC}/0`), { body: legacy, wm: legacyWm }, "left as it was");
    assert.deepEqual(
      storedEntries(h).filter(({ id }) => id.includes("#")),
      [],
      "the buckets written hold no expired hold",
    );
  });

  test("Property: updateRegistry and dueAccounts give what one map of the whole partition gives", () => {
    const billing = defaultBillingConfig;
    const accountAt = (key: string, due: number | null): AccountState => {
      const account = cloneState(accountOf(run([usage()]).state));
      account.account_key = key;
      // A hold expiring at `due` makes the account's next timed change (an app end user has no period)
      if (due === null) delete account.holds;
      else
        account.holds = {
          h: {
            chat_id: "c",
            tokens: 1,
            expires_at: new Date(due).toISOString(),
            record_id: "r",
            occurred_at: new Date(0).toISOString(),
            enterprise_id: "a",
          },
        };
      return account;
    };
    fc.assert(
      fc.property(
        fc.array(
          fc.array(fc.tuple(fc.integer({ min: 0, max: 30 }), fc.option(fc.integer({ min: 1, max: 9 }))), {
            maxLength: 12,
          }),
          { maxLength: 8 },
        ),
        fc.integer({ min: 0, max: 10 }),
        (batches, tickAt) => {
          let buckets = Array.from({ length: REGISTRY_BUCKETS }, (_, b) => emptyRegistry(0, b));
          const model = new Map<string, number>();
          for (const batch of batches) {
            const touched = new Map<string, AccountState>();
            for (const [n, due] of batch) touched.set(`app:a:u${n}`, accountAt(`app:a:u${n}`, due));
            for (const [key, account] of touched) {
              const next = nextTimedChange(account, billing);
              if (next === null) model.delete(key);
              else model.set(key, next);
            }
            const changed = updateRegistry(buckets, touched, billing);
            buckets = buckets.map((bucket, b) => changed.get(b) ?? bucket);
          }
          for (const [b, bucket] of buckets.entries())
            for (const entry of bucket.entries) assert.equal(bucketOf(entry.account_key), b);
          const listed = buckets.flatMap((bucket) =>
            bucket.entries.map((e) => [e.account_key, e.due_ms] as const),
          );
          assert.deepEqual(new Map(listed), model);
          assert.equal(listed.length, model.size, "no account listed twice");
          assert.deepEqual(
            dueAccounts(buckets, tickAt).map((entry) => entry.account_key),
            [...model]
              .filter(([, due]) => due <= tickAt)
              .map(([key]) => key)
              .sort(),
          );
        },
      ),
    );
  });

  test("Given a bucket past the document limit, Then the plan is refused before anything is written (RECORD_STORE_REJECTED)", () => {
    const plan = emptyPlan(TOPIC, 0, { first: "0", last: "0" }, at(0));
    const huge: HoldRegistryEntry = {
      account_key: "x".repeat(MAX_ACCOUNT_DOC_BYTES),
      due_ms: 1,
      address: { level: "app_usage", enterprise_id: "a", mozaiks_user_id: "m", platform_user_id: "p" },
    };
    plan.registryWrites.push({
      ref: { namespace: "registry", id: `${TOPIC}/0#1` },
      body: { partition: 0, bucket: 1, entries: [huge] },
      loaded: null,
      newWm: 0n,
    });
    assert.throws(
      () => checkSizes(plan, 1024 * 1024),
      (error) =>
        isAgentmeterError(error, "RECORD_STORE_REJECTED") && /hold registry document/.test(error.message),
    );
  });
});

describe("an app's revenue ledger within int64 (checkSizes)", () => {
  // 4 agents x 2e12 tokens at 1e12 micros a million tokens: 8e18 micros billed a record, within int64
  // (9.22e18) on its own account, so the core takes it; two end users of one app on one partition sum
  // 1.6e19 in the app's ledger, which MongoDB would store wrapped (as -2.4e18).
  const billing = config({ app_trial_tokens: { default: 0 }, price_book: HUGE_PRICE_BOOK });
  const agents = Object.fromEntries(
    ["a", "b", "c", "d"].map((name) => [name, { prompt_tokens: 1e12, completion_tokens: 1e12 }]),
  );
  const hugeUsage = (user: string, offset: number): InputMessage => {
    const occurredAt = at(offset);
    const record = {
      type: "usage",
      record_id: `r-${user}`,
      level: "app_usage",
      enterprise_id: "app_456",
      mozaiks_user_id: "user_123",
      platform_user_id: user,
      workflow_type: "chat_interaction",
      workflow_name: "default",
      session_id: "sess-1",
      chat_id: "chat-1",
      agent_usage: agents,
      occurred_at: occurredAt,
    };
    return {
      offset: String(offset),
      key: Buffer.from(`app:app_456:${user}`),
      value: Buffer.from(JSON.stringify(record)),
      timestamp: String(Date.parse(occurredAt)),
    };
  };

  test("Given a record that would take its app's ledger past int64, Then the plan is refused before anything is written (RECORD_STORE_REJECTED); the one before it passes", async () => {
    const h = partitionHarness({ billing });
    const worker = h.worker();
    const first = await worker.plan([hugeUsage("u1", 0)]);
    assert.deepEqual(first.deadLetters, []);
    const [ledger] = first.ledgerWrites;
    assert.equal(ledger?.body.billed_micros, 8_000_000_000_000_000_000n);
    await h.flush(worker, first);
    await assert.rejects(
      () => worker.plan([hugeUsage("u2", 1)]),
      (error) =>
        isAgentmeterError(error, "RECORD_STORE_REJECTED") &&
        /revenue ledger .*app_456.* billed_micros 16000000000000000000, past the signed 64-bit integer/.test(
          error.message,
        ),
    );
    // Why: what the driver would have stored.
    const wrapped = BSON.deserialize(BSON.serialize({ v: 16_000_000_000_000_000_000n }), {
      useBigInt64: true,
    });
    assert.equal(wrapped.v, -2_446_744_073_709_551_616n);
  });
});

describe("account document size guard (checkSizes, 15 MiB)", () => {
  const base = accountOf(run([usage()]).state);
  const bsonSize = (body: AccountState) =>
    BSON.calculateObjectSize(body as unknown as BSON.Document, { ignoreUndefined: true });

  function planWith(...bodies: AccountState[]): FlushPlan {
    const plan = emptyPlan(TOPIC, 0, { first: "0", last: "0" }, at(0));
    for (const body of bodies)
      plan.accountWrites.push({
        ref: { namespace: "AppUsers", id: body.account_key },
        body,
        loaded: null,
        newWm: 0n,
      });
    return plan;
  }

  /** The account with its chat's workflow name padded so that the document is exactly `bytes` of BSON. */
  function accountOfSize(bytes: number): AccountState {
    const account = cloneState(base);
    const chat = account.chats["chat-1"]!;
    chat.workflow_name = "";
    const empty = bsonSize(account);
    chat.workflow_name = "w".repeat(bytes - empty);
    assert.equal(bsonSize(account), bytes);
    return account;
  }

  /** The account with `n` open chats like its one (about 14,000 real ones pass MongoDB's 16 MiB). */
  function accountWithChats(n: number): AccountState {
    const account = cloneState(base);
    const chat = account.chats["chat-1"]!;
    const agents = Object.fromEntries(
      Array.from({ length: 8 }, (_, i) => [`ResearchAgent_${i}`, { ...chat.agents.Agent! }]),
    );
    for (let i = 0; i < n; i++)
      account.chats[`chat-${String(i).padStart(8, "0")}`] = { ...chat, session_id: `sess-${i}`, agents };
    return account;
  }

  function refusal(plan: FlushPlan, maxStateMessageBytes = 900 * 1024): AgentmeterError {
    try {
      checkSizes(plan, maxStateMessageBytes);
    } catch (error) {
      assert.ok(isAgentmeterError(error), String(error));
      return error;
    }
    assert.fail("the plan was not refused");
  }

  test("the limit is 15 MiB, under MongoDB's 16 MiB", () => {
    assert.equal(MAX_ACCOUNT_DOC_BYTES, 15 * MIB);
  });

  test("Given a normal plan, Then it passes", () => {
    const other = cloneState(base);
    checkSizes(planWith(base, other), 900 * 1024);
    checkSizes(emptyPlan(TOPIC, 0, { first: undefined, last: undefined }, at(0)), 900 * 1024);
  });

  test("Given an account document of exactly 15 MiB, Then it passes; one byte more is RECORD_STORE_REJECTED naming the document", () => {
    checkSizes(planWith(accountOfSize(MAX_ACCOUNT_DOC_BYTES)), 900 * 1024);
    const error = refusal(planWith(base, accountOfSize(MAX_ACCOUNT_DOC_BYTES + 1)));
    assert.equal(error.code, "RECORD_STORE_REJECTED");
    assert.match(
      error.message,
      new RegExp(`account document ${base.account_key} would be ${MAX_ACCOUNT_DOC_BYTES + 1} bytes`),
    );
    assert.equal(
      isDeterministicStoreError(error),
      true,
      "the processor splits the batch and dead-letters the record",
    );
  });

  test("Given an account with enough open chats to pass 15 MiB, Then the plan is refused before anything is written", () => {
    const big = accountWithChats(15_000);
    assert.ok(bsonSize(big) > MAX_ACCOUNT_DOC_BYTES, `${bsonSize(big)} bytes`);
    assert.equal(refusal(planWith(big)).code, "RECORD_STORE_REJECTED");
  });

  test("Given a budget-state message over AGENTMETER_MAX_STATE_MESSAGE_BYTES, Then it is RECORD_STORE_REJECTED too; at the limit it passes", () => {
    const plan = emptyPlan(TOPIC, 0, { first: "0", last: "0" }, at(0));
    plan.budgetStates.push(budgetStateOf(base));
    const bytes = Buffer.byteLength(
      JSON.stringify(plan.budgetStates[0], (_key, value: unknown) =>
        typeof value === "bigint" ? value.toString() : value,
      ),
    );
    checkSizes(plan, bytes);
    const error = refusal(plan, bytes - 1);
    assert.equal(error.code, "RECORD_STORE_REJECTED");
    assert.match(error.message, /budget state of app:app_456:enduser_789/);
    assert.equal(loadConfig({}).AGENTMETER_MAX_STATE_MESSAGE_BYTES, 900 * 1024);
  });
});

// ---------------------------------------------------------------------------------------------------

const monthRuns = (rows: readonly PositionedOutcome[]) => runsByMonth(rows, (row) => row.outcome.occurred_at);

describe("ClickHouse month split (monthRuns, MONTHS_PER_INSERT)", () => {
  /** A usage row at a log offset; only the position and occurred_at matter to the split. */
  const row = (offset: number, occurredAt: string): PositionedOutcome => ({
    position: { topic: TOPIC, partition: 0, offset: String(offset) },
    outcome: { occurred_at: occurredAt } as UsageOutcome,
  });
  /** The first day of the i-th month after January 2015, at 10:00 UTC. */
  const month = (i: number, day = 1) => new Date(Date.UTC(2015, i, day, 10)).toISOString();
  /** The month ClickHouse files a row under: toYYYYMM(occurred_at) of a DateTime64(3, 'UTC') column. */
  const partitionOf = (item: PositionedOutcome) =>
    new Date(item.outcome.occurred_at).toISOString().slice(0, 7);

  function assertSplit(rows: PositionedOutcome[], runs: PositionedOutcome[][]) {
    assert.deepEqual(
      runs.flat().map((item) => item.position.offset),
      rows.map((item) => item.position.offset),
      "every row once, in offset order",
    );
    for (const [i, item] of runs.flat().entries()) assert.equal(item, rows[i], "the rows themselves");
    for (const run of runs) {
      assert.ok(run.length > 0, "no empty insert");
      const months = new Set(run.map(partitionOf)).size;
      assert.ok(months <= MONTHS_PER_INSERT, `an insert spans ${months} months`);
    }
  }

  test("the documented bound: 90 months per insert, under the server's 100 partitions", () => {
    assert.equal(MONTHS_PER_INSERT, 90);
  });

  test("Given a flush with usage in 250 distinct months, Then 3 inserts of at most 90 months, no row lost or repeated, order kept", () => {
    // Two rows a month, the second a later day, and every tenth month a row of an earlier month again.
    const rows: PositionedOutcome[] = [];
    for (let i = 0; i < 250; i++) {
      rows.push(row(rows.length, month(i)), row(rows.length, month(i, 20)));
      if (i % 10 === 9) rows.push(row(rows.length, month(i - 5, 3)));
    }
    assert.equal(new Set(rows.map(partitionOf)).size, 250);
    const runs = monthRuns(rows);
    assertSplit(rows, runs);
    assert.equal(runs.length, 3);
    assert.deepEqual(
      runs.map((run) => new Set(run.map(partitionOf)).size),
      [90, 90, 70],
    );
  });

  test("Given 101 distinct months (one over the server's limit), Then 2 inserts", () => {
    const rows = Array.from({ length: 101 }, (_, i) => row(i, month(i)));
    const runs = monthRuns(rows);
    assertSplit(rows, runs);
    assert.deepEqual(
      runs.map((run) => run.length),
      [90, 11],
    );
  });

  test("Given at most 90 months, Then one insert with every row; none, no insert", () => {
    const rows = Array.from({ length: 180 }, (_, i) => row(i, month(i % 90, 1 + (i % 27))));
    assert.deepEqual(monthRuns(rows), [rows]);
    assert.deepEqual(monthRuns([]), []);
  });

  test("Given times with a zone offset across month ends, Then an insert still spans at most 90 ClickHouse (UTC) months", {}, () => {
    // Every other month, one row on the 1st at 00:30+05:00 (UTC: the month before) and one mid-month.
    const rows: PositionedOutcome[] = [];
    for (let i = 0; i < 90; i++) {
      const [year, monthOfYear] = month(2 * i)
        .slice(0, 7)
        .split("-");
      rows.push(row(rows.length, `${year}-${monthOfYear}-01T00:30:00+05:00`));
      rows.push(row(rows.length, `${year}-${monthOfYear}-15T10:00:00Z`));
    }
    assert.equal(new Set(rows.map(partitionOf)).size, 180);
    assertSplit(rows, monthRuns(rows));
  });
});

// ---------------------------------------------------------------------------------------------------

describe("store errors: deterministic (dead-letter the record) vs transient (retry)", () => {
  /** A Kafka protocol error as kafkajs builds it from a broker's error code (protocol/error.js). */
  const kafkaProtocol = (type: string, code: number, retriable: boolean) =>
    new KafkaJSProtocolError(Object.assign(new Error(`broker error ${type}`), { type, code, retriable }));
  /** What kafkajs' retrier rejects with: a non-retriable error wraps it, retries exhausted wrap it too. */
  const nonRetriable = (cause: Error) => Object.assign(new KafkaJSNonRetriableError(cause), { cause });
  const retriesExceeded = (cause: Error) =>
    Object.assign(new KafkaJSNumberOfRetriesExceeded(cause, { retryCount: 5, retryTime: 3000 }), { cause });
  /** A ClickHouse server error as @clickhouse/client parses the response body. */
  const clickhouse = (code: number, type: string, message: string) => {
    const error = parseError(
      `Code: ${code}. DB::Exception: ${message}. (${type}) (version 24.8.4.13 (official build))`,
    );
    assert.ok(error instanceof ClickHouseError);
    return error;
  };
  const nodeSystemError = (code: string, message: string) =>
    Object.assign(new Error(message), { code, errno: -111, syscall: "connect" });

  const deterministic: Array<[string, unknown]> = [
    [
      "MongoDB: the server refuses a document over 16 MiB (BSONObjectTooLarge, 10334)",
      new MongoServerError({
        message: "BSONObj size: 16793700 (0x1002564) is invalid",
        code: 10334,
        codeName: "BSONObjectTooLarge",
      }),
    ],
    [
      "MongoDB: an update whose result is over 16 MiB (17419), in a bulk write",
      new MongoBulkWriteError(
        {
          message: "Resulting document after update is larger than 16777216",
          code: 17419,
          writeErrors: [],
        },
        {} as never,
      ),
    ],
    [
      "MongoDB: a bulk write refused for a key too long (17280)",
      new MongoBulkWriteError(
        { message: "key too large to index", code: 17280, writeErrors: [] },
        {} as never,
      ),
    ],
    [
      "MongoDB driver: a document over the maximum size, refused before sending",
      new MongoInvalidArgumentError("Document is larger than the maximum size 16777216"),
    ],
    [
      "BSON: a value it cannot serialize",
      new BSON.BSONError("Cannot serialize a document over the maximum size"),
    ],
    [
      "Kafka: MESSAGE_TOO_LARGE, as kafkajs' retrier rejects it",
      nonRetriable(kafkaProtocol("MESSAGE_TOO_LARGE", 10, false)),
    ],
    ["Kafka: MESSAGE_TOO_LARGE, bare", kafkaProtocol("MESSAGE_TOO_LARGE", 10, false)],
    ["Kafka: RECORD_LIST_TOO_LARGE", nonRetriable(kafkaProtocol("RECORD_LIST_TOO_LARGE", 18, false))],
    ["Kafka: INVALID_RECORD", nonRetriable(kafkaProtocol("INVALID_RECORD", 87, false))],
    [
      "agentmeter: a size the planner refuses (RECORD_STORE_REJECTED)",
      new AgentmeterError("RECORD_STORE_REJECTED", "account document would be too large"),
    ],
    [
      "agentmeter: the billing core failed on records loaded fresh (RECORD_APPLY_FAILED)",
      new AgentmeterError("RECORD_APPLY_FAILED", "the billing core failed", { cause: new TypeError("x") }),
    ],
    [
      "agentmeter: a store error wrapped as another error's cause",
      new Error("flush failed", {
        cause: new MongoServerError({ message: "BSONObj size too large", code: 10334 }),
      }),
    ],
  ];
  for (const [name, error] of deterministic)
    test(`deterministic: ${name}`, () => assert.equal(isDeterministicStoreError(error), true));

  const transient: Array<[string, unknown]> = [
    ["MongoDB: a network error", new MongoNetworkError("connection 4 to 127.0.0.1:27017 closed")],
    [
      "MongoDB: a socket timeout (MongoNetworkTimeoutError)",
      new MongoNetworkTimeoutError("connection 4 to 127.0.0.1:27017 timed out"),
    ],
    [
      "MongoDB: no server selectable (MongoServerSelectionError, ECONNREFUSED inside)",
      new MongoServerSelectionError("connect ECONNREFUSED 127.0.0.1:27017", {
        type: "Unknown",
        servers: new Map(),
        error: new MongoNetworkError("connect ECONNREFUSED 127.0.0.1:27017"),
      } as never),
    ],
    [
      "MongoDB: a primary stepping down (NotWritablePrimary, 10107)",
      new MongoServerError({ message: "not primary", code: 10107, codeName: "NotWritablePrimary" }),
    ],
    [
      "MongoDB: an operation out of time (MaxTimeMSExpired, 50)",
      new MongoServerError({
        message: "operation exceeded time limit",
        code: 50,
        codeName: "MaxTimeMSExpired",
      }),
    ],
    [
      "MongoDB: a bulk write that lost its connection",
      new MongoBulkWriteError(new MongoNetworkError("connection reset"), {} as never),
    ],
    ["Node: ECONNREFUSED", nodeSystemError("ECONNREFUSED", "connect ECONNREFUSED 127.0.0.1:8123")],
    ["Node: ECONNRESET", nodeSystemError("ECONNRESET", "socket hang up")],
    [
      "ClickHouse: memory limit (241, HTTP 500)",
      clickhouse(241, "MEMORY_LIMIT_EXCEEDED", "Memory limit (total) exceeded"),
    ],
    [
      "ClickHouse: timeout (159)",
      clickhouse(159, "TIMEOUT_EXCEEDED", "Timeout exceeded: elapsed 30.1 seconds"),
    ],
    [
      "ClickHouse: too many queries (202)",
      clickhouse(202, "TOO_MANY_SIMULTANEOUS_QUERIES", "Too many simultaneous queries. Maximum: 100"),
    ],
    [
      "ClickHouse: too many parts under merge backlog (252, same code as too many partitions)",
      clickhouse(
        252,
        "TOO_MANY_PARTS",
        "Too many parts (3001 with average size of 1.21 KiB) in table 'agentmeter.usage_events'. Merges are processing significantly slower than inserts",
      ),
    ],
    [
      "ClickHouse: a 503 from a proxy (body not a ClickHouse exception)",
      parseError("503 Service Unavailable"),
    ],
    [
      "Kafka: a connection error",
      new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:9092"),
    ],
    [
      "Kafka: a request timeout",
      new KafkaJSRequestTimeoutError("Request Produce(key: 0, version: 7) timed out"),
    ],
    [
      "Kafka: NOT_LEADER_FOR_PARTITION after retries",
      retriesExceeded(kafkaProtocol("NOT_LEADER_FOR_PARTITION", 6, true)),
    ],
    ["Kafka: REQUEST_TIMED_OUT", kafkaProtocol("REQUEST_TIMED_OUT", 7, true)],
    [
      "agentmeter: OWNERSHIP_LOST (another member owns the partition now)",
      new AgentmeterError("OWNERSHIP_LOST", "moved"),
    ],
    ["a plain Error", new Error("something")],
    ["not an error", "boom"],
    ["undefined", undefined],
  ];
  for (const [name, error] of transient)
    test(`transient: ${name}`, () => assert.equal(isDeterministicStoreError(error), false));

  test("a cause chain that loops ends, transient (the walk is bounded)", () => {
    const cyclic = new Error("a") as Error & { cause?: unknown };
    cyclic.cause = cyclic;
    assert.equal(isDeterministicStoreError(cyclic), false);
  });

  test("ClickHouse codes it names are deterministic (an error named ClickHouseError)", () => {
    for (const [code, type, message] of [
      [252, "TOO_MANY_PARTS", "Too many partitions for single INSERT block (more than 100)"],
      [6, "CANNOT_PARSE_TEXT", "Cannot parse string 'x' as UInt64"],
      [53, "TYPE_MISMATCH", "Type mismatch in IN or VALUES section"],
      [69, "ARGUMENT_OUT_OF_BOUND", "Argument is out of bound"],
    ] as const) {
      const error = clickhouse(code, type, message);
      Object.defineProperty(error, "name", { value: "ClickHouseError" });
      assert.equal(isDeterministicStoreError(error), true, type);
    }
  });

  test("ClickHouse: too many partitions for one insert, as @clickhouse/client throws it, is deterministic", {}, () => {
    const error = clickhouse(
      252,
      "TOO_MANY_PARTS",
      "Too many partitions for single INSERT block (more than 100). The limit is controlled by 'max_partitions_per_insert_block' setting",
    );
    assert.equal(isDeterministicStoreError(error), true);
    assert.equal(isDeterministicStoreError(clickhouse(6, "CANNOT_PARSE_TEXT", "Cannot parse input")), true);
  });

  test("ClickHouse: too many parts under a merge backlog (also code 252) stays transient once ClickHouse errors are recognized", {}, () => {
    const backlog = clickhouse(
      252,
      "TOO_MANY_PARTS",
      "Too many parts (3001). Merges are processing significantly slower than inserts",
    );
    Object.defineProperty(backlog, "name", { value: "ClickHouseError" });
    assert.equal(isDeterministicStoreError(backlog), false);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("dedupe cap: forgotten ids logged once per account, counted in agentmeter_dedupe_ids_forgotten_total", () => {
  const CAP_MSG = /^dedupe cap reached/;
  const billing = config({ dedupe: { max_entries: 100 } });

  /** The value of one series in Prometheus' text format. */
  async function sample(metrics: ProcessorMetrics, series: string): Promise<number | undefined> {
    for (const line of (await metrics.text()).body.split("\n")) {
      if (line.startsWith("#")) continue;
      const space = line.lastIndexOf(" ");
      if (line.slice(0, space) === series) return Number(line.slice(space + 1));
    }
    return undefined;
  }

  test("Given an account past its cap on every batch, Then one warning for it (and one for the next account), every forgotten id counted", async () => {
    const { logger, lines } = capturingLogger();
    const h = partitionHarness({ billing, logger });
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    const warnings = () => lines.filter((line) => CAP_MSG.test(line.msg));
    let worker = h.worker();
    const batches: FlushPlan[] = [];
    const step = async (messages: InputMessage[]) => {
      const plan = await worker.plan(messages);
      assert.deepEqual(plan.deadLetters, []);
      await h.flush(worker, plan);
      metrics.planDurable(plan);
      batches.push(plan);
      return plan;
    };

    const ids = (user: string, from: number, n: number) =>
      Array.from({ length: n }, (_, i) => h.usage(user, `${user}-r-${from + i}`));
    assert.equal((await step(ids("u1", 0, 101))).stats.dedupeForgotten, 11);
    assert.equal(warnings().length, 1);
    assert.equal(warnings()[0]!.account, "app:app_456:u1");

    // u1 forgets again on each batch (the cap forgets down to 90): counted, not logged again.
    assert.ok((await step(ids("u1", 101, 20))).stats.dedupeForgotten > 0);
    assert.ok((await step(ids("u1", 121, 20))).stats.dedupeForgotten > 0);
    assert.equal(warnings().length, 1);

    // Another account reaching its cap is logged, once.
    await step([...ids("u2", 0, 101), ...ids("u1", 141, 20)]);
    assert.deepEqual(
      warnings().map((line) => line.account),
      ["app:app_456:u1", "app:app_456:u2"],
    );

    // A new worker of the same processor (after a rebalance) does not log u1 again.
    worker = h.worker();
    await step(ids("u1", 161, 20));
    assert.equal(warnings().length, 2);

    const total = batches.reduce((sum, plan) => sum + plan.stats.dedupeForgotten, 0);
    const stored = ["app:app_456:u1", "app:app_456:u2"].reduce(
      (sum, key) => sum + (h.accounts.docs.get(key)!.body.dedupe.forgotten_in_horizon ?? 0),
      0,
    );
    assert.equal(total, stored, "the counter agrees with the accounts' own counts");
    assert.equal(await sample(metrics, "agentmeter_dedupe_ids_forgotten_total"), total);
  });

  test("Given another processor (its own logger), Then it logs the account once more", async () => {
    const first = capturingLogger();
    const second = capturingLogger();
    for (const { logger } of [first, second]) {
      const h = partitionHarness({ billing, logger });
      const worker = h.worker();
      const messages = Array.from({ length: 101 }, (_, i) => h.usage("u1", `r-${i}`));
      await h.flush(worker, await worker.plan(messages));
    }
    for (const { lines } of [first, second])
      assert.equal(lines.filter((line) => CAP_MSG.test(line.msg)).length, 1);
  });

  test("OncePerKey: true once per key, bounded, the least recently seen forgotten first", () => {
    const once = new OncePerKey(3);
    assert.deepEqual(
      ["a", "b", "c", "a"].map((key) => once.first(key)),
      [true, true, true, false],
    );
    assert.equal(once.first("d"), true, "over the bound: b, the least recently seen, goes");
    assert.equal(once.size, 3);
    assert.equal(once.first("a"), false);
    assert.equal(once.first("b"), true);
    assert.equal(once.size, 3);

    const big = new OncePerKey(DEDUPE_NOTICES_MAX);
    for (let i = 0; i < DEDUPE_NOTICES_MAX + 500; i++) big.first(`app:app_1:user_${i}`);
    assert.equal(big.size, DEDUPE_NOTICES_MAX);
  });

  test("the counter is exported from the start, counts planDurable's stats, and stays 0 with metrics off", async () => {
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    const series = "agentmeter_dedupe_ids_forgotten_total";
    assert.equal(await sample(metrics, series), 0);
    assert.ok(metrics.seriesNames().includes(series));
    const plan = (dedupeForgotten: number) => ({
      stats: { consumed: 1, applied: 1, replayedSkipped: 0, duplicates: 0, dedupeForgotten },
      deadLetters: [],
      budgetEvents: [],
    });
    metrics.planDurable(plan(11));
    metrics.planDurable(plan(0));
    metrics.planDurable(plan(4));
    assert.equal(await sample(metrics, series), 15);
    assert.match((await metrics.text()).body, /# TYPE agentmeter_dedupe_ids_forgotten_total counter/);

    const off: ProcessorMetrics = new DisabledMetrics();
    off.planDurable(plan(11));
    off.dedupeIdsForgotten(3);
    assert.equal(await sample(off, series), 0);
  });
});

describe("ClickHouse month split of session summaries (appendSessionSummaries)", () => {
  test("Given one flush finishing sessions in 101 UTC months, Then two inserts of at most 90 months, each summary once, none deduplicated by the server", async () => {
    const inserts: { values: Record<string, unknown>[]; settings: Record<string, unknown> }[] = [];
    const client = {
      insert: async (args: {
        values: Record<string, unknown>[];
        clickhouse_settings: Record<string, unknown>;
      }) => {
        inserts.push({ values: args.values, settings: args.clickhouse_settings });
      },
    } as unknown as ClickHouseClient;
    const summaries = Array.from({ length: 101 }, (_, i) => {
      const ended = new Date(Date.UTC(2020, i, 15)).toISOString();
      return {
        record_id: `fin-${i}`,
        account_key: `app:a:u${i}`,
        level: "app_usage",
        enterprise_id: "a",
        mozaiks_user_id: "c",
        platform_user_id: `u${i}`,
        session_id: `s${i}`,
        chat_id: `c${i}`,
        workflow_name: "w",
        started_at: ended,
        ended_at: ended,
        session_duration_seconds: 0,
        total_tokens: 1,
        total_cost_micros: 1n,
        billed_micros: 1n,
        agent_performance: {},
      } as unknown as SessionSummary;
    });
    const written = await appendSessionSummaries(client, "db.session_summaries", summaries);
    assert.equal(written, 101);
    assert.deepEqual(
      inserts.map((insert) => insert.values.length),
      [90, 11],
    );
    assert.deepEqual(
      inserts.flatMap((insert) => insert.values.map((row) => row.record_id)),
      summaries.map((summary) => summary.record_id),
    );
    // A retry or a replay stores a second copy, which FINAL collapses; a token could drop a retry whose
    // first try the server logged but did not keep.
    for (const insert of inserts) assert.deepEqual(insert.settings, { insert_deduplicate: 0 });
  });
});

describe("a billing core that fails on a valid record (a bug): RECORD_APPLY_FAILED, within a budget", () => {
  /** Every record's model (the default) is the one whose price throws while `failing.on`. */
  const failingBilling = (failing: { on: boolean }): BillingConfig => ({
    ...billingWithBug(defaultBillingConfig, failing),
    default_model: BUGGY_MODEL,
  });

  test("Given memory loaded fresh from the stores, When the core throws, Then RECORD_APPLY_FAILED with the error as its cause", async () => {
    const failing = { on: true };
    const harness = partitionHarness({ billing: failingBilling(failing) });
    const worker = harness.worker();
    await assert.rejects(worker.plan([harness.usage("u1", "r1")]), (error: unknown) => {
      assert.ok(isAgentmeterError(error, "RECORD_APPLY_FAILED"), String(error));
      assert.match(error.message, /injected: pricing failed/);
      assert.ok(error.cause instanceof TypeError);
      assert.equal(isDeterministicStoreError(error), true, "found and dead-lettered like a store's refusal");
      return true;
    });
    assert.equal(worker.cold, true, "memory dropped: the next plan reads the stores");
  });

  test("Given memory kept from an earlier batch, When the core throws, Then the raw error first (retried), and RECORD_APPLY_FAILED only from a fresh load", async () => {
    const failing = { on: false };
    const harness = partitionHarness({ billing: failingBilling(failing) });
    const worker = harness.worker();
    await harness.flush(worker, await worker.plan([harness.usage("u1", "r1")]));
    failing.on = true;
    const next = harness.usage("u1", "r2");
    // Memory may be what failed (a stale or evicted account): the failure is retried, from the stores.
    await assert.rejects(worker.plan([next]), (error: unknown) => {
      assert.ok(error instanceof TypeError && !isDeterministicStoreError(error), String(error));
      return true;
    });
    await assert.rejects(worker.plan([next]), (error: unknown) =>
      isAgentmeterError(error, "RECORD_APPLY_FAILED"),
    );
    // Fixed (a deploy): the same record plans, from the stores, and bills.
    failing.on = false;
    const plan = await worker.plan([next]);
    assert.equal(plan.stats.applied, 1);
  });

  test("Given the budget spent, When the core throws from a fresh load, Then the raw error: the batch is retried until a fix", async () => {
    const harness = partitionHarness({
      billing: failingBilling({ on: true }),
      applyFailures: { open: false },
    });
    await assert.rejects(harness.worker().plan([harness.usage("u1", "r1")]), (error: unknown) => {
      assert.ok(error instanceof TypeError && !isDeterministicStoreError(error), String(error));
      return true;
    });
  });

  test("ApplyFailureBudget: at most `limit` in any window, and each spent one returns when it leaves the window", () => {
    let now = 0;
    const budget = new ApplyFailureBudget(2, () => now, 1_000);
    assert.equal(budget.open, true);
    budget.spend();
    now = 500;
    budget.spend();
    assert.equal(budget.open, false);
    now = 999;
    assert.equal(budget.open, false);
    now = 1_000;
    assert.equal(budget.open, true, "the first left the window");
    budget.spend();
    assert.equal(budget.open, false);
    assert.equal(new ApplyFailureBudget(0).open, false, "0: never dead-lettered, retried as before");
  });
});
