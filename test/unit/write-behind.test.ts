import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../pipeline/log.ts";
import { emptyPlan, type FlushPlan } from "../../pipeline/processor/plan.ts";
import type { ProjectionTarget, Watermark } from "../../pipeline/processor/ports.ts";
import { MAX_CYCLE_RECORDS, mergePlans, WriteBehind } from "../../pipeline/processor/write-behind.ts";

const accounts = "MozaiksPlatform.MozaiksUsers";
const pauses: ProjectionTarget = { db: "app", app: "a", collection: "pausedChats" };
const at = (offset: bigint): Watermark => ({ topic: "t", partition: 0, offset });

function plan(first: number, last: number, parts: Partial<FlushPlan> = {}): FlushPlan {
  const base = emptyPlan("t", 0, { first: String(first), last: String(last) }, `2026-12-01T00:00:0${last}Z`);
  const records = last - first + 1;
  return { ...base, stats: { ...base.stats, consumed: records, applied: records }, ...parts };
}

describe("write-behind: coalescing plans into one cycle", () => {
  it("writes each document once, with the latest body, on the position the stores hold now", () => {
    const owner = { stored: null as Watermark | null, pendingWm: undefined };
    const first = plan(0, 4, {
      accountWrites: [
        { ref: { namespace: accounts, id: "u1" }, body: { v: 1 } as never, loaded: null, newWm: 4n, owner },
      ],
    });
    // Made while the first plan's cycle was in flight: it loaded the position that cycle then moved.
    const second = plan(5, 9, {
      accountWrites: [
        { ref: { namespace: accounts, id: "u1" }, body: { v: 2 } as never, loaded: null, newWm: 9n, owner },
      ],
    });
    owner.stored = at(4n);
    const cycle = mergePlans([first, second]);
    assert.equal(cycle.accountWrites.length, 1);
    assert.deepEqual(cycle.accountWrites[0]?.body, { v: 2 });
    assert.equal(cycle.accountWrites[0]?.newWm, 9n);
    assert.deepEqual(cycle.accountWrites[0]?.loaded, at(4n));
    assert.equal(cycle.firstOffset, "0");
    assert.equal(cycle.commitOffset, "10");
    assert.equal(cycle.stats.consumed, 10);
    assert.equal(cycle.plannedAt, second.plannedAt);
  });

  it("keeps a document created by an earlier plan, whole, when a later one only updates it if it exists", () => {
    const created = plan(0, 0, {
      projections: [{ target: pauses, id: "c1", doc: { chat_id: "c1", account_key: "k", status: "paused" } }],
    });
    const finished = plan(1, 1, {
      projections: [
        { target: pauses, id: "c1", doc: { status: "finalized", ended_at: "t" }, ifExists: true },
      ],
    });
    const [write, ...rest] = mergePlans([created, finished]).projections;
    assert.equal(rest.length, 0);
    // What the sync path leaves: the document as created, then the update's fields set on it
    assert.deepEqual(write?.doc, { chat_id: "c1", account_key: "k", status: "finalized", ended_at: "t" });
    assert.equal(write?.ifExists, false);
    const onlyUpdate = mergePlans([finished, plan(2, 2)]).projections;
    assert.equal(onlyUpdate[0]?.ifExists, true);
    // Two updates in a row set both's fields, still only if the document exists
    const again = plan(3, 3, {
      projections: [{ target: pauses, id: "c1", doc: { status: "resumed" }, ifExists: true }],
    });
    const [updates] = mergePlans([finished, again]).projections;
    assert.deepEqual([updates?.doc, updates?.ifExists], [{ status: "resumed", ended_at: "t" }, true]);
    // A later whole document replaces what came before it
    const [replaced] = mergePlans([finished, created]).projections;
    assert.deepEqual([replaced?.doc, replaced?.ifExists], [created.projections[0]!.doc, undefined]);
  });

  it("leaves the Kafka outputs out: they were published before the plan was queued", () => {
    const cycle = mergePlans([
      plan(0, 0, { budgetStates: [{} as never], deadLetters: [{} as never], budgetEvents: [{} as never] }),
    ]);
    assert.deepEqual([cycle.budgetStates, cycle.deadLetters, cycle.budgetEvents], [[], [], []]);
  });
});

describe("write-behind: the stage", () => {
  const logger = createLogger("silent");

  it("takes everything queued while a cycle runs into the next one, and commits after each", async () => {
    const cycles: string[] = [];
    const commits: string[] = [];
    let release!: () => void;
    const firstCycleHeld = new Promise<void>((resolve) => {
      release = resolve;
    });
    const stage = new WriteBehind(0, "t", {
      publish: async () => undefined,
      write: async (cycle) => {
        cycles.push(`${cycle.firstOffset}-${cycle.commitOffset}`);
        if (cycles.length === 1) await firstCycleHeld;
        return { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
      },
      durable: () => undefined,
      commit: async (offset) => {
        commits.push(offset);
      },
      failed: () => assert.fail("no failure expected"),
      logger,
    });
    stage.enqueue(plan(0, 9));
    stage.enqueue(plan(10, 19));
    stage.enqueue(plan(20, 29));
    assert.equal(stage.resumeFrom, "0");
    assert.ok(stage.over({ maxRecords: 30, maxLagMs: 60_000 }));
    assert.ok(!stage.over({ maxRecords: 31, maxLagMs: 60_000 }));
    release();
    await stage.drain();
    assert.deepEqual(cycles, ["0-10", "10-30"]);
    assert.deepEqual(commits, ["10", "30"]);
    assert.equal(stage.resumeFrom, undefined);
    assert.equal(stage.pending.records, 0);
  });

  it("caps a cycle at MAX_CYCLE_RECORDS whole plans, so commits keep coming under a backlog", async () => {
    const cycles: string[] = [];
    const stage = new WriteBehind(0, "t", {
      publish: async () => undefined,
      write: async (cycle) => {
        cycles.push(`${cycle.firstOffset}-${cycle.commitOffset}`);
        return { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
      },
      durable: () => undefined,
      commit: async () => undefined,
      failed: () => assert.fail("no failure expected"),
      logger,
    });
    const size = Math.floor(MAX_CYCLE_RECORDS * 0.6);
    for (let i = 0; i < 4; i++) stage.enqueue(plan(i * size, (i + 1) * size - 1));
    await stage.drain();
    // Each cycle holds as many whole plans as fit under the cap: here one (two would pass it).
    assert.deepEqual(
      cycles,
      [0, 1, 2, 3].map((i) => `${i * size}-${(i + 1) * size}`),
    );
  });

  it("paces cycles at minIntervalMs: what arrives meanwhile joins the next cycle; abandoning ends the wait", async () => {
    const starts: number[] = [];
    const cycles: string[] = [];
    const stage = new WriteBehind(0, "t", {
      publish: async () => undefined,
      write: async (cycle) => {
        starts.push(Date.now());
        cycles.push(`${cycle.firstOffset}-${cycle.commitOffset}`);
        return { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
      },
      durable: () => undefined,
      commit: async () => undefined,
      failed: () => undefined,
      logger,
      minIntervalMs: 300,
    });
    stage.enqueue(plan(0, 9));
    await stage.drain();
    // Three plans within the interval: one cycle for all three, no sooner than 300 ms after the first.
    for (let i = 1; i <= 3; i++) {
      stage.enqueue(plan(i * 10, i * 10 + 9));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await stage.drain();
    assert.deepEqual(cycles, ["0-10", "10-40"]);
    assert.ok(starts[1]! - starts[0]! >= 295, `second cycle ${starts[1]! - starts[0]!} ms after the first`);

    // A stage waiting out its interval is abandoned at once, and writes nothing more.
    stage.enqueue(plan(40, 49));
    await new Promise((resolve) => setTimeout(resolve, 20)); // the stage is in its wait now
    const abandoning = Date.now();
    await stage.abandon();
    assert.ok(Date.now() - abandoning < 200, `abandon took ${Date.now() - abandoning} ms`);
    await new Promise((resolve) => setTimeout(resolve, 350));
    assert.deepEqual(cycles, ["0-10", "10-40"]);
  });

  it("stops on a cycle the stores refuse: nothing committed, the caller told where to fetch from", async () => {
    const failures: unknown[] = [];
    const commits: string[] = [];
    const refusal = new Error("refused");
    const stage = new WriteBehind(0, "t", {
      publish: async () => undefined,
      write: async (cycle) => {
        if (cycle.firstOffset === "5") throw refusal;
        return { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
      },
      durable: () => undefined,
      commit: async (offset) => {
        commits.push(offset);
      },
      failed: (error) => failures.push(error),
      logger,
    });
    stage.enqueue(plan(0, 4));
    await stage.drain();
    stage.enqueue(plan(5, 9));
    await assert.rejects(stage.drain(), refusal);
    assert.deepEqual(commits, ["5"]);
    assert.deepEqual(failures, [refusal]);
    assert.equal(stage.resumeFrom, "5");
    assert.equal(stage.failedUpTo, "9");
    await stage.abandon();
    assert.throws(() => stage.enqueue(plan(10, 10)));
  });

  it("publishes in order beside the cycles, what queues meanwhile in one send, and writes nothing unpublished", async () => {
    const events: string[] = [];
    const releases: (() => void)[] = [];
    const stage = new WriteBehind(0, "t", {
      publish: (decisions) =>
        new Promise<void>((resolve) => {
          const names = decisions.holdDecisions.map((decision) => decision.hold_id).join("+");
          events.push(`publish ${names}`);
          releases.push(() => {
            events.push(`published ${names}`);
            resolve();
          });
        }),
      write: async (cycle) => {
        events.push(`write ${cycle.firstOffset}-${cycle.commitOffset}`);
        return { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
      },
      durable: () => undefined,
      commit: async (offset) => {
        events.push(`commit ${offset}`);
      },
      failed: () => assert.fail("no failure expected"),
      logger,
    });
    const holding = (first: number, last: number, id: string) =>
      plan(first, last, { holdDecisions: [{ hold_id: id } as never] });
    const order: string[] = [];
    for (const [first, last, id] of [
      [0, 4, "a"],
      [5, 9, "b"],
      [10, 14, "c"],
    ] as const)
      void stage.enqueue(holding(first, last, id)).then(() => order.push(id));
    const drained = stage.drain();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // a is out; b and c wait for it, and no cycle writes a before it is published.
    assert.deepEqual(events, ["publish a"]);
    releases.shift()!();
    await new Promise((resolve) => setTimeout(resolve, 20));
    // b and c go in one send; a's cycle (it held a alone) writes meanwhile.
    assert.deepEqual(events.slice(0, 2), ["publish a", "published a"]);
    assert.deepEqual(events.slice(2).sort(), ["commit 5", "publish b+c", "write 0-5"]);
    releases.shift()!();
    await drained;
    assert.deepEqual(events.slice(5), ["published b+c", "write 5-15", "commit 15"]);
    assert.deepEqual(order, ["a", "b", "c"]);
  });

  it("stops on a publish that fails: nothing written or committed, and nothing later published", async () => {
    const failures: unknown[] = [];
    const writes: string[] = [];
    let sends = 0;
    const outage = new Error("brokers gone");
    let release!: () => void;
    const stage = new WriteBehind(0, "t", {
      publish: async () => {
        sends++;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        throw outage;
      },
      write: async (cycle) => {
        writes.push(`${cycle.firstOffset}-${cycle.commitOffset}`);
        return { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
      },
      durable: () => undefined,
      commit: async () => assert.fail("nothing to commit"),
      failed: (error) => failures.push(error),
      logger,
    });
    const first = stage.enqueue(plan(0, 4));
    const second = stage.enqueue(plan(5, 9)); // waits behind the first send
    await new Promise((resolve) => setTimeout(resolve, 20));
    release();
    await assert.rejects(first, outage);
    await assert.rejects(second, outage);
    await assert.rejects(stage.drain(), outage);
    assert.equal(sends, 1);
    assert.deepEqual(failures, [outage]);
    assert.deepEqual(writes, []);
    assert.equal(stage.resumeFrom, "0");
    await stage.abandon();
  });

  it("abandons only after the send in flight settled, so a new owner publishes after it", async () => {
    let release!: () => void;
    let sending = false;
    const stage = new WriteBehind(0, "t", {
      publish: async () => {
        sending = true;
        await new Promise<void>((resolve) => {
          release = resolve;
        });
        sending = false;
      },
      write: async () => ({ kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 }),
      durable: () => undefined,
      commit: async () => undefined,
      failed: () => undefined,
      logger,
    });
    const published = stage.enqueue(plan(0, 4));
    let abandoned = false;
    const abandoning = stage.abandon().then(() => {
      abandoned = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(sending, true);
    assert.equal(abandoned, false);
    release();
    await abandoning;
    await published;
    assert.equal(sending, false);
  });
});
