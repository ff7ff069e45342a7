import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { comparedAccount, diffStores } from "../../pipeline/audit/diff.ts";
import { RecomputeFeed } from "../../pipeline/audit/feed.ts";
import { packetTransfer, packMessages, unpackMessages } from "../../pipeline/audit/packet.ts";
import { RecomputePool, shareUnits } from "../../pipeline/audit/pool.ts";
import type { AdjustmentTotals, UsageTotals } from "../../pipeline/audit/read-clickhouse.ts";
import type { MongoActual } from "../../pipeline/audit/read-mongo.ts";
import { type Expected, Recomputer, type TopicMessage } from "../../pipeline/audit/recompute.ts";
import { buildAuditReport, reportJson } from "../../pipeline/audit/report.ts";
import { mergeUnits, type RecomputeSetup, UnitRecompute, unitsOf } from "../../pipeline/audit/units.ts";
import { AUDIT_WORKERS_VARIABLE, auditWorkers, defaultAuditWorkers } from "../../pipeline/audit/workers.ts";
import { creditAuthorization } from "../../pipeline/auth/signature.ts";
import { auditCommand, progressPrinter } from "../../pipeline/cli/audit.ts";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import { generateWorkload, prng } from "../../pipeline/simulate/workload.ts";
import { accountKeyOf, type InputRecordJson, SCHEMA_VERSION } from "../../schemas/index.ts";
import { cloneState } from "../support/clone-state.ts";
import { correctionsOf } from "../support/corrections.ts";
import { PLATFORM_IDS, tokens, usage } from "./builders.ts";

const billing = parseBillingConfig({});
const PARTITIONS = 6;

/** A tick key the murmur2 partitioner puts on `partition` (as the processor's tick clock finds one). */
function tickKey(partition: number): string {
  for (let salt = 0; ; salt++) {
    const key = `tick:${partition}:${salt.toString(36)}`;
    if (partitionForKey(key, PARTITIONS) === partition) return key;
  }
}

/**
 * A topic of six partitions as the processor's producers leave it (usage, then voids and refunds of it):
 * every record on its key's murmur2
 * partition, log timestamps, a tick on every partition now and then, and what the processor
 * dead-letters (a wrong key, a wrong partition, not JSON, no value).
 */
function topic(): Map<number, TopicMessage[]> {
  const usage = [
    ...generateWorkload({ seed: 7, records: 2_400, apps: 3, usersPerApp: 6, runId: "par", stepMs: 60_000 }),
  ];
  // Voids and refunds after it: their adjustments are merged across units like usage.
  const records = [...usage, ...correctionsOf(usage, billing)];
  const byPartition = new Map<number, TopicMessage[]>();
  for (let p = 0; p < PARTITIONS; p++) byPartition.set(p, []);
  const push = (partition: number, message: Omit<TopicMessage, "offset">) => {
    const list = byPartition.get(partition)!;
    list.push({ ...message, offset: String(list.length) });
  };
  records.forEach((record, index) => {
    const key = accountKeyOf(record as never);
    const value = Buffer.from(JSON.stringify(record));
    const timestamp = String(Date.parse(record.occurred_at));
    push(partitionForKey(key, PARTITIONS), { key: Buffer.from(key), value, timestamp });
    if (index % 400 === 399) {
      for (let p = 0; p < PARTITIONS; p++) {
        const tick = {
          type: "tick",
          schema_version: SCHEMA_VERSION,
          record_id: `tick-${p}-${index}`,
          partition: p,
          occurred_at: record.occurred_at,
        };
        push(p, { key: Buffer.from(tickKey(p)), value: Buffer.from(JSON.stringify(tick)), timestamp });
      }
    }
    if (index === 10) {
      push(partitionForKey(key, PARTITIONS), { key: Buffer.from("app:nobody:nobody"), value, timestamp });
      push((partitionForKey(key, PARTITIONS) + 1) % PARTITIONS, { key: Buffer.from(key), value, timestamp });
      push(2, { key: Buffer.from("x"), value: Buffer.from("{not json") });
      push(3, { key: null, value: null });
    }
  });
  return byPartition;
}

const setup = (partitionCounts: readonly number[] | undefined = [PARTITIONS]): RecomputeSetup => ({
  billing,
  maxRecordBytes: 65_536,
  partitionCounts,
  creditPolicy: creditAuthorization({}),
  partitions: [0, 1, 2, 3, 4, 5],
});

/** The reader hands over fetches: here batches of up to 97 messages, partitions taking turns. */
function* batches(byPartition: Map<number, TopicMessage[]>): Generator<[number, TopicMessage[]]> {
  const at = new Map<number, number>();
  let more = true;
  while (more) {
    more = false;
    for (const [partition, list] of byPartition) {
      const from = at.get(partition) ?? 0;
      if (from >= list.length) continue;
      more = true;
      at.set(partition, from + 97);
      yield [partition, list.slice(from, from + 97)];
    }
  }
}

function inMainThread(byPartition: Map<number, TopicMessage[]>, counts?: readonly number[]): Expected {
  const units = new UnitRecompute(setup(counts));
  for (const [partition, list] of batches(byPartition)) for (const m of list) units.add(partition, m);
  return mergeUnits(units.finish());
}

async function inWorkers(
  byPartition: Map<number, TopicMessage[]>,
  workers: number,
  counts?: readonly number[],
): Promise<{ expected: Expected; threads: number; applied: number }> {
  const records = new Map([...byPartition].map(([p, list]) => [p, list.length]));
  let applied = 0;
  const pool = await RecomputePool.create(setup(counts), workers, records, (count) => {
    applied = count;
  });
  try {
    for (const [partition, list] of batches(byPartition)) await pool.add(partition, list);
    return { expected: await pool.finish(), threads: pool.size, applied };
  } finally {
    await pool.close();
  }
}

/** Stores a processor left with differences everywhere: every figure the report can name, with records. */
function tamperedStores(expected: Expected): {
  mongo: MongoActual;
  clickhouse: Record<string, Map<string, UsageTotals>>;
  adjustments: Map<string, AdjustmentTotals>;
} {
  const accounts = new Map(
    Object.keys(expected.state.accounts)
      .sort()
      .map((key, index) => {
        const account = expected.state.accounts[key]!;
        const doc = cloneState(account) as unknown as Record<string, unknown>;
        if (index % 3 === 0) doc.credited_tokens = Number(doc.credited_tokens) + 17;
        return [
          account.account_key,
          {
            account_key: account.account_key,
            level: account.level,
            enterprise_id: account.enterprise_id,
            doc,
          },
        ];
      }),
  );
  const revenue = new Map(
    [...expected.revenue].map(([app, ledger]) => [
      app,
      { ...ledger.figures, records: ledger.figures.records - 2n },
    ]),
  );
  const usage = new Map(
    [...expected.usage].map(([key, group]) => [
      key,
      {
        enterprise_id: group.enterprise_id,
        level: group.level,
        figures: { ...group.figures, billed_micros: group.figures.billed_micros + 5n },
      },
    ]),
  );
  const adjustments = new Map(
    [...expected.adjustments].map(([key, group]) => [
      key,
      {
        enterprise_id: group.enterprise_id,
        level: group.level,
        figures: { ...group.figures, records: group.figures.records + 1n },
      },
    ]),
  );
  return {
    mongo: { accounts: accounts as MongoActual["accounts"], revenue, apps: [...revenue.keys()] },
    clickhouse: { usage_events: usage, usage_by_hour: usage },
    adjustments,
  };
}

function report(expected: Expected): string {
  const differences = diffStores(expected, tamperedStores(expected));
  assert.ok(differences.length > 20, "the comparison names differences with their records");
  assert.ok(
    differences.some((d) => d.store === "clickhouse.adjustments" && d.record_ids.length > 0),
    "and the adjustments with the voids and refunds",
  );
  return reportJson(
    buildAuditReport({
      range: {
        topic: "t",
        partitions: [0, 1, 2, 3, 4, 5].map((partition) => ({ partition, from: "0", to: "1" })),
        complete: true,
      },
      namespace: { mongodb_platform_db: "P", mongodb_app_db_prefix: "A_", clickhouse_database: "c" },
      billing,
      counts: expected.counts,
      checked: { "mongodb.accounts": Object.keys(expected.state.accounts).length },
      differences,
    }),
  );
}

describe("audit in parallel: the same report whatever the number of worker threads", () => {
  const byPartition = topic();

  it("given 0 (main thread), 1, 2 and 3 worker threads, the report is byte-identical and the figures equal", async () => {
    const reference = inMainThread(byPartition);
    assert.ok(reference.counts.usage_outcomes > 1_500);
    assert.equal(reference.counts.skipped_key_mismatch, 1);
    assert.equal(reference.counts.skipped_wrong_partition, 1);
    assert.equal(reference.counts.skipped_undecodable, 2);
    const bytes = report(reference);
    for (const workers of [1, 2, 3]) {
      const { expected, threads, applied } = await inWorkers(byPartition, workers);
      assert.equal(threads, workers);
      assert.equal(applied, reference.counts.messages, "progress counts every message");
      assert.equal(report(expected), bytes, `${workers} worker(s)`);
      assert.deepEqual(expected, reference, `${workers} worker(s)`);
    }
  });

  it("given more threads than partitions, one thread per partition", async () => {
    const { expected, threads } = await inWorkers(byPartition, 64);
    assert.equal(threads, PARTITIONS);
    assert.equal(report(expected), report(inMainThread(byPartition)));
  });

  it("gives what one recomputer fed the partitions one after the other gives, when no tick crosses partitions", () => {
    // Without ticks, accounts are independent: one state for all partitions is the same state.
    const noTicks = new Map(
      [...byPartition].map(([p, list]) => [p, list.filter((m) => !m.key?.toString().startsWith("tick:"))]),
    );
    const one = new Recomputer(billing, 65_536, { partitionCounts: [PARTITIONS] });
    for (const [partition, list] of [...noTicks].sort(([a], [b]) => a - b))
      for (const message of list) one.add(partition, message);
    const single = one.finish();
    const merged = inMainThread(noTicks);
    assert.deepEqual(merged.counts, single.counts);
    // Each account as the diff compares it: figures, level, app, paused chats.
    assert.deepEqual(
      Object.entries(merged.state.accounts),
      Object.keys(single.state.accounts)
        .sort()
        .map((k) => [k, comparedAccount(single.state.accounts[k]!)]),
    );
    assert.deepEqual(new Map([...merged.usage].sort()), new Map([...single.usage].sort()));
    assert.deepEqual(new Map([...merged.revenue].sort()), new Map([...single.revenue].sort()));
    assert.ok(single.adjustments.size > 0, "the topic's voids and refunds were applied");
    assert.deepEqual(new Map([...merged.adjustments].sort()), new Map([...single.adjustments].sort()));
    // The report from the whole state of one recomputer is the same as from the merged accounts' figures.
    assert.equal(report(merged), report(single));
  });

  it("a tick reaches only the accounts of its own partition, as in the processor", () => {
    const expected = inMainThread(byPartition);
    const perPartition = new Map<number, Set<string>>();
    for (const [key, trail] of expected.trails) {
      assert.equal(trail.partition, partitionForKey(key, PARTITIONS));
      perPartition.set(trail.partition, (perPartition.get(trail.partition) ?? new Set()).add(key));
    }
    assert.equal(perPartition.size, PARTITIONS, "every partition holds accounts");
  });

  it("given a partition count that changed, one unit for all partitions, whatever the threads", async () => {
    assert.deepEqual(unitsOf(setup([3, PARTITIONS])), [-1]);
    assert.deepEqual(unitsOf({ partitionCounts: undefined, partitions: [0, 1] }), [-1]);
    const reference = inMainThread(byPartition, [3, PARTITIONS]);
    for (const workers of [1, 2]) {
      const { expected, threads } = await inWorkers(byPartition, workers, [3, PARTITIONS]);
      assert.equal(threads, 1);
      assert.equal(report(expected), report(reference));
    }
  });

  it("shares units out largest first to the least loaded thread, the same way every time", () => {
    const units = [0, 1, 2, 3, 4, 5].map((unit) => ({ unit, records: [50, 10, 40, 30, 20, 60][unit]! }));
    // 60 -> A, 50 -> B, 40 -> B (90), 30 -> A (90), 20 -> A (tie: the lower thread), 10 -> B.
    assert.deepEqual(shareUnits(units, 2), [
      [3, 4, 5],
      [0, 1, 2],
    ]);
    assert.deepEqual(shareUnits(units, 1), [[0, 1, 2, 3, 4, 5]]);
    assert.equal(shareUnits(units, 8).length, 6);
  });

  it("a worker that fails makes the pool fail, with nothing left running", async () => {
    const pool = await RecomputePool.create(
      { ...setup(), billing: { ...billing, price_book: null as never } },
      1,
      new Map([[0, 1]]),
    );
    const first = byPartition.get(0)!;
    await assert.rejects(async () => {
      await pool.add(0, first.slice(0, 50));
      await pool.finish();
    });
    await pool.close();
  });
});

/** A tick message for `partition`, with its log timestamp. */
function tickMessage(partition: number, id: string, occurredAt: string): Omit<TopicMessage, "offset"> {
  const tick = {
    type: "tick",
    schema_version: SCHEMA_VERSION,
    record_id: id,
    partition,
    occurred_at: occurredAt,
  };
  return {
    key: Buffer.from(tickKey(partition)),
    value: Buffer.from(JSON.stringify(tick)),
    timestamp: String(Date.parse(occurredAt)),
  };
}

/**
 * A topic whose partition count went from 3 to 6 (AgentmeterTopics [3, 6]): the records of an old
 * workload on their key's partition of 3, those of a newer one (the same accounts, overlapping in time:
 * records in flight while producers switched) on their key's partition of 6, then voids and refunds; an
 * account whose two partitions differ has records on both. Each partition in log-time order, as produced.
 * Ticks now and then on `tickOn`, and platform accounts used once before a month boundary (their monthly
 * allowance turns over on a tick of their own partition past it, and on no other).
 */
function countChangeTopic(options: { oldEra: boolean; tickOn: readonly number[] }): {
  byPartition: Map<number, TopicMessage[]>;
  spanning: string[];
} {
  const era = (seed: number, runId: string, startAt: string) => [
    ...generateWorkload({ seed, records: 700, apps: 3, usersPerApp: 5, runId, stepMs: 60_000, startAt }),
  ];
  const old = options.oldEra ? era(21, "old", "2026-01-31T12:00:00Z") : [];
  const newer = era(22, "new", "2026-01-31T20:00:00Z");
  // Creators whose only record is before the month boundary: only a tick can turn their period over.
  const idle: InputRecordJson[] = [0, 1, 2, 3, 4, 5, 6, 7].map(
    (n) =>
      usage({
        record_id: `idle-${n}`,
        ...PLATFORM_IDS,
        mozaiks_user_id: `idle_creator_${n}`,
        occurred_at: "2026-01-31T21:00:00.000Z",
        ...tokens(40_000 + n),
      }) as unknown as InputRecordJson,
  );
  const placed: { record: InputRecordJson; count: number; order: number }[] = [
    ...old.map((record, order) => ({ record, count: 3, order })),
    ...[...newer, ...idle].map((record, order) => ({ record, count: PARTITIONS, order: 10_000 + order })),
  ].sort((a, b) => Date.parse(a.record.occurred_at) - Date.parse(b.record.occurred_at) || a.order - b.order);
  const all = placed.map((p) => p.record);
  for (const record of correctionsOf(all, billing)) placed.push({ record, count: PARTITIONS, order: 0 });
  const byPartition = new Map<number, TopicMessage[]>();
  for (let p = 0; p < PARTITIONS; p++) byPartition.set(p, []);
  const push = (partition: number, message: Omit<TopicMessage, "offset">) => {
    const list = byPartition.get(partition)!;
    list.push({ ...message, offset: String(list.length) });
  };
  const partitionsOf = new Map<string, Set<number>>();
  placed.forEach(({ record, count }, index) => {
    const key = accountKeyOf(record as never);
    const partition = partitionForKey(key, count);
    partitionsOf.set(key, (partitionsOf.get(key) ?? new Set()).add(partition));
    const timestamp = String(Date.parse(record.occurred_at));
    push(partition, { key: Buffer.from(key), value: Buffer.from(JSON.stringify(record)), timestamp });
    if (index % 120 === 119)
      for (const p of options.tickOn) push(p, tickMessage(p, `tick-${p}-${index}`, record.occurred_at));
  });
  for (const list of byPartition.values())
    for (let i = 1; i < list.length; i++)
      assert.ok(
        Number(list[i]!.timestamp) >= Number(list[i - 1]!.timestamp),
        "each partition in log-time order",
      );
  const spanning = [...partitionsOf].filter(([, partitions]) => partitions.size > 1).map(([key]) => key);
  return { byPartition, spanning: spanning.sort() };
}

/** A delivery: batches of partitions, each partition in offset order, `ended` on its last. */
type Delivery = [partition: number, messages: TopicMessage[], ended: boolean][];

/** Each partition whole, one after the other in `order`, in batches of `size`. */
function oneAfterAnother(
  byPartition: Map<number, TopicMessage[]>,
  order: readonly number[],
  size: number,
): Delivery {
  const delivery: Delivery = [];
  for (const partition of order) {
    const list = byPartition.get(partition)!;
    for (let from = 0; from < list.length; from += size)
      delivery.push([partition, list.slice(from, from + size), from + size >= list.length]);
  }
  return delivery;
}

/** Partitions taking turns at random (seeded), batches of random sizes: kafkajs' fetches as they come. */
function interleaved(byPartition: Map<number, TopicMessage[]>, seed: number): Delivery {
  const random = prng(seed);
  const at = new Map([...byPartition.keys()].map((p) => [p, 0]));
  const delivery: Delivery = [];
  for (;;) {
    const open = [...at].filter(([p, from]) => from < byPartition.get(p)!.length).map(([p]) => p);
    if (open.length === 0) return delivery;
    const partition = open[Math.floor(random() * open.length)]!;
    const list = byPartition.get(partition)!;
    const from = at.get(partition)!;
    const to = Math.min(list.length, from + 1 + Math.floor(random() * 150));
    at.set(partition, to);
    delivery.push([partition, list.slice(from, to), to === list.length]);
  }
}

async function fed(delivery: Delivery, counts: readonly number[], workers: number): Promise<Expected> {
  const records = new Map([0, 1, 2, 3, 4, 5].map((p) => [p, 1]));
  const feed = await RecomputeFeed.create(setup(counts), workers, records);
  try {
    for (const [partition, messages, ended] of delivery) await feed.batch(partition, messages, ended);
    return await feed.finish();
  } finally {
    await feed.close();
  }
}

/** Every message of the topic in (log timestamp, partition, offset) order, the merge order. */
function inLogOrder(byPartition: Map<number, TopicMessage[]>): [number, TopicMessage][] {
  const all: [number, TopicMessage][] = [];
  for (const [partition, list] of byPartition) for (const message of list) all.push([partition, message]);
  return all.sort(
    ([pa, a], [pb, b]) =>
      Number(a.timestamp) - Number(b.timestamp) || pa - pb || Number(a.offset) - Number(b.offset),
  );
}

/** What the audit must give: one recomputer for every partition, fed in the merge order. */
function reference(byPartition: Map<number, TopicMessage[]>, counts: readonly number[]): Expected {
  const units = new UnitRecompute(setup(counts));
  for (const [partition, message] of inLogOrder(byPartition)) units.add(partition, message);
  return mergeUnits(units.finish());
}

/** The figures of an Expected that do not depend on how units were cut (record ids' order does). */
function figuresOf(expected: Expected) {
  const groups = <G extends { figures: unknown }>(map: Map<string, G>) =>
    [...map].sort(([a], [b]) => (a < b ? -1 : 1)).map(([key, group]) => [key, group.figures]);
  return {
    accounts: Object.keys(expected.state.accounts)
      .sort()
      .map((key) => [key, comparedAccount(expected.state.accounts[key]!)]),
    usage: groups(expected.usage),
    adjustments: groups(expected.adjustments),
    revenue: groups(expected.revenue),
    holds: [...expected.holds].sort(([a], [b]) => (a < b ? -1 : 1)),
    counts: expected.counts,
  };
}

describe("audit after a partition count change: one order, whatever the delivery", () => {
  const COUNTS = [3, PARTITIONS];
  const { byPartition, spanning } = countChangeTopic({ oldEra: true, tickOn: [0, 1, 2, 3, 4] });

  it("given an account on its old partition 0 and its new partition 3, its records apply in log-time order whichever partition comes first", async () => {
    let user = 0;
    const ids = () => ({
      level: "app_usage" as const,
      enterprise_id: "app_456",
      mozaiks_user_id: "user_123",
    });
    while (partitionForKey(`app:app_456:u${user}`, PARTITIONS) !== 3) user++;
    const key = `app:app_456:u${user}`;
    assert.equal(partitionForKey(key, 3), 0, "partition 0 of 3, partition 3 of 6");
    const message = (id: string, at: string, count: number, model: string): TopicMessage => ({
      offset: "0",
      key: Buffer.from(key),
      value: Buffer.from(
        JSON.stringify(
          usage({
            record_id: id,
            ...ids(),
            platform_user_id: `u${user}`,
            occurred_at: at,
            model,
            ...tokens(count),
          }),
        ),
      ),
      timestamp: String(Date.parse(at)),
    });
    // r1 on the old partition, r2 after the change on the new one, at other prices: the trial goes to
    // whichever applies first, so the order decides what is billed.
    const r1 = message("r1", "2026-02-01T10:00:00.000Z", 9_000, "gpt-4o");
    const r2 = message("r2", "2026-02-01T10:05:00.000Z", 90_000, "default");
    const two = new Map([
      [0, [r1]],
      [3, [r2]],
    ]);
    const setupOf = { ...setup(COUNTS), partitions: [0, 3] };
    const run = async (order: [number, TopicMessage][], workers: number) => {
      const feed = await RecomputeFeed.create(
        setupOf,
        workers,
        new Map([
          [0, 1],
          [3, 1],
        ]),
      );
      try {
        for (const [partition, m] of order) await feed.batch(partition, [m], true);
        return await feed.finish();
      } finally {
        await feed.close();
      }
    };
    const oneByOne = new Recomputer(billing, 65_536, { partitionCounts: COUNTS });
    oneByOne.add(0, r1);
    oneByOne.add(3, r2);
    const want = oneByOne.finish().state.accounts[key]!.billed_micros;
    const backwards = new Recomputer(billing, 65_536, { partitionCounts: COUNTS });
    backwards.add(3, r2);
    backwards.add(0, r1);
    assert.notEqual(backwards.finish().state.accounts[key]!.billed_micros, want, "the order decides");
    for (const workers of [0, 1]) {
      const oldFirst = await run(
        [
          [0, r1],
          [3, r2],
        ],
        workers,
      );
      const newFirst = await run(
        [
          [3, r2],
          [0, r1],
        ],
        workers,
      );
      assert.equal(
        oldFirst.state.accounts[key]!.billed_micros,
        want,
        `${workers} worker(s), old partition first`,
      );
      assert.equal(
        newFirst.state.accounts[key]!.billed_micros,
        want,
        `${workers} worker(s), new partition first`,
      );
      assert.deepEqual(newFirst, oldFirst);
    }
    assert.equal(reference(two, COUNTS).state.accounts[key]!.billed_micros, want);
  });

  it("given partitions delivered one after the other, in reverse, or interleaved in batches of any size, the report is byte-identical and is the one of the records applied in log-time order", async () => {
    assert.ok(spanning.length >= 5, `accounts on an old and a new partition: ${spanning.length}`);
    const want = reference(byPartition, COUNTS);
    assert.ok(want.counts.usage_outcomes > 900, JSON.stringify(want.counts));
    assert.equal(want.counts.skipped_wrong_partition, 0, "every record on its key's partition under 3 or 6");
    const bytes = report(want);
    const deliveries: [string, Delivery][] = [
      ["0..5 one after the other", oneAfterAnother(byPartition, [0, 1, 2, 3, 4, 5], 97)],
      ["5..0 one after the other", oneAfterAnother(byPartition, [5, 4, 3, 2, 1, 0], 500)],
      ["new partitions first", oneAfterAnother(byPartition, [3, 4, 5, 0, 1, 2], 1)],
      ["round robin", [...batches(byPartition)].map(([p, list]) => [p, list, false] as Delivery[number])],
      ["interleaved, seed 1", interleaved(byPartition, 1)],
      ["interleaved, seed 2", interleaved(byPartition, 2)],
      ["interleaved, seed 3", interleaved(byPartition, 3)],
    ];
    // Round robin: ended on each partition's last batch.
    const robin = deliveries[3]![1];
    for (const partition of byPartition.keys()) {
      const last = robin.findLastIndex(([p]) => p === partition);
      robin[last]![2] = true;
    }
    for (const [name, delivery] of deliveries) {
      const expected = await fed(delivery, COUNTS, 0);
      assert.equal(report(expected), bytes, name);
      assert.deepEqual(expected, want, name);
    }
    for (const [name, delivery] of [deliveries[1]!, deliveries[4]!]) {
      for (const workers of [1, 3]) {
        const expected = await fed(delivery, COUNTS, workers);
        assert.equal(report(expected), bytes, `${name}, ${workers} worker thread(s)`);
      }
    }
  });

  it("holds a bounded number of bytes per partition: a partition ahead is paused at the reader until the others catch up, and the one the merge waits for never is", async () => {
    const laneBytes = 20_000;
    for (const seed of [1, 2, 3, 4]) {
      const random = prng(seed);
      const feed = await RecomputeFeed.create(setup(COUNTS), 0, new Map(), { laneBytes });
      const paused = new Set<number>();
      let pauses = 0;
      const control = {
        pause: (partition: number) => {
          pauses++;
          paused.add(partition);
        },
        resume: (partition: number) => paused.delete(partition),
      };
      const at = new Map([...byPartition.keys()].map((p) => [p, 0]));
      let most = 0;
      let biggest = 0;
      // A reader as kafkajs is one: it fetches only partitions not paused, in batches of any size.
      for (;;) {
        const left = [...at].filter(([p, from]) => from < byPartition.get(p)!.length).map(([p]) => p);
        if (left.length === 0) break;
        const open = left.filter((p) => !paused.has(p));
        assert.ok(open.length > 0, `seed ${seed}: every partition with records left is paused`);
        const partition = open[Math.floor(random() * open.length)]!;
        const list = byPartition.get(partition)!;
        const from = at.get(partition)!;
        const to = Math.min(list.length, from + 1 + Math.floor(random() * 40));
        at.set(partition, to);
        const batch = list.slice(from, to);
        biggest = Math.max(
          biggest,
          batch.reduce((n, m) => n + m.key!.length + m.value!.length, 0),
        );
        await feed.batch(partition, batch, to === list.length, control);
        for (const p of byPartition.keys()) most = Math.max(most, feed.queuedBytes(p));
      }
      assert.ok(pauses > 0, `seed ${seed}: partitions ahead were paused`);
      assert.ok(most <= laneBytes + biggest, `seed ${seed}: at most ${laneBytes} + a batch held (${most})`);
      assert.equal(report(await feed.finish()), report(reference(byPartition, COUNTS)), `seed ${seed}`);
    }
  });

  it("a tick reaches only the accounts of its own partition, as with one partition count", async () => {
    // No account spans partitions here: [3, 6] must give the figures of [6] (a unit per partition).
    const { byPartition: onSix, spanning: none } = countChangeTopic({ oldEra: false, tickOn: [0, 1, 2] });
    assert.deepEqual(none, []);
    const perPartition = inMainThread(onSix, [PARTITIONS]);
    const merged = await fed(interleaved(onSix, 7), COUNTS, 0);
    assert.deepEqual(figuresOf(merged), figuresOf(perPartition));
    // The idle creators on partitions without ticks keep January's trial use; a tick of another partition
    // turning their period over would have reset it.
    const kept = Object.keys(perPartition.state.accounts).filter(
      (key) => key.startsWith("platform:idle_creator_") && partitionForKey(key, PARTITIONS) > 2,
    );
    assert.ok(kept.length > 0);
    for (const key of kept) assert.ok(perPartition.state.accounts[key]!.trial_used_tokens > 0, key);
    const everywhere = new Recomputer(billing, 65_536, { partitionCounts: COUNTS });
    for (const [partition, message] of inLogOrder(onSix)) everywhere.add(partition, message);
    assert.notDeepEqual(
      figuresOf(everywhere.finish()),
      figuresOf(perPartition),
      "ticks reaching every account differ",
    );
  });
});

describe("audit in parallel: packets between threads", () => {
  it("unpacks what was packed: offsets, timestamps, null keys and values, headers as Buffers", () => {
    const messages: TopicMessage[] = [
      {
        offset: "9007199254740993",
        key: Buffer.from("k1"),
        value: Buffer.from("v1"),
        timestamp: "1700000000123",
      },
      { offset: "1", key: null, value: null },
      {
        offset: "2",
        key: Buffer.alloc(0),
        value: Buffer.from("é"),
        headers: { sig: Buffer.from("abc"), s: "x" },
      },
      { offset: "3", key: Buffer.from("k4"), value: Buffer.alloc(0), timestamp: "not a number" },
    ];
    const packet = structuredClone(packMessages(4, messages), {
      transfer: packetTransfer(packMessages(4, messages)),
    });
    const out: [number, TopicMessage][] = [];
    unpackMessages(packet, (partition, message) => out.push([partition, message]));
    assert.equal(out.length, 4);
    assert.ok(out.every(([partition]) => partition === 4));
    const [a, b, c, d] = out.map(([, message]) => message);
    assert.equal(a!.offset, "9007199254740993");
    assert.equal(a!.timestamp, "1700000000123");
    assert.equal(a!.key!.toString(), "k1");
    assert.deepEqual([b!.key, b!.value, b!.timestamp], [null, null, undefined]);
    assert.equal(c!.key!.length, 0);
    assert.equal(c!.value!.toString(), "é");
    assert.ok(Buffer.isBuffer(c!.headers!.sig));
    assert.equal((c!.headers!.sig as Buffer).toString(), "abc");
    assert.equal(c!.headers!.s, "x");
    assert.equal(d!.value!.length, 0);
    assert.equal(d!.timestamp, undefined);
  });
});

describe("audit in parallel: the worker count", () => {
  it("takes --workers, else AGENTMETER_AUDIT_WORKERS, else one per core", () => {
    assert.equal(auditWorkers("3", { [AUDIT_WORKERS_VARIABLE]: "5" }), 3);
    assert.equal(auditWorkers("0", {}), 0);
    assert.equal(auditWorkers(undefined, { [AUDIT_WORKERS_VARIABLE]: "5" }), 5);
    assert.equal(auditWorkers(undefined, { [AUDIT_WORKERS_VARIABLE]: "" }), defaultAuditWorkers());
    assert.equal(auditWorkers(undefined, {}), defaultAuditWorkers());
    assert.ok(defaultAuditWorkers() >= 1);
  });

  it("refuses a bad value with one line naming the flag or the variable", () => {
    for (const bad of ["", "x", "-1", "1.5", "65", " 2", "0x2"]) {
      assert.throws(
        () => auditWorkers(bad, {}),
        (error) =>
          isAgentmeterError(error, "CLI_USAGE") &&
          error.message.startsWith(`--workers ${JSON.stringify(bad)} is invalid: expected a whole number`) &&
          !error.message.includes("\n"),
        bad,
      );
      if (bad === "") continue;
      assert.throws(
        () => auditWorkers(undefined, { [AUDIT_WORKERS_VARIABLE]: bad }),
        (error) =>
          isAgentmeterError(error, "CONFIG_INVALID") &&
          error.message.startsWith(`config: AGENTMETER_AUDIT_WORKERS=${JSON.stringify(bad)} is invalid`) &&
          !error.message.includes("\n"),
        bad,
      );
    }
  });
});

describe("agentmeter audit --workers", () => {
  const run = async (argv: string[], env: Record<string, string> = {}) => {
    let err = "";
    const saved = process.env[AUDIT_WORKERS_VARIABLE];
    Object.assign(process.env, env);
    try {
      const code = await auditCommand.run(argv, {
        stdin: process.stdin,
        stdout: { write: () => true },
        stderr: { write: (text: string) => (err += text) },
      });
      return { code, err };
    } finally {
      if (saved === undefined) delete process.env[AUDIT_WORKERS_VARIABLE];
      else process.env[AUDIT_WORKERS_VARIABLE] = saved;
    }
  };

  it("given a bad --workers or AGENTMETER_AUDIT_WORKERS, exits 2 with one line naming it, before any connection", async () => {
    const flag = await run(["--workers", "two"]);
    assert.equal(flag.code, 2);
    assert.equal(
      flag.err,
      'agentmeter audit: --workers "two" is invalid: expected a whole number from 0 (recompute in the main thread) to 64\n',
    );
    const env = await run([], { [AUDIT_WORKERS_VARIABLE]: "100" });
    assert.equal(env.code, 2);
    assert.match(
      env.err,
      /^agentmeter audit: config: AGENTMETER_AUDIT_WORKERS="100" is invalid: expected a whole number/,
    );
    assert.equal(env.err.split("\n").length, 2, "one line");
  });
});

describe("audit progress", () => {
  it("prints the rate and the time left at most once a second, and the time taken at the end", () => {
    let now = 1_000_000;
    let text = "";
    const print = progressPrinter(
      { stderr: { write: (line: string) => (text += line) } },
      "audit",
      1000,
      () => now,
    );
    now += 2_000;
    print({ read: 40_000, total: 100_000 });
    now += 500;
    print({ read: 50_000, total: 100_000 });
    now += 1_000;
    print({ read: 70_000, total: 100_000 });
    now += 100;
    print({ read: 100_000, total: 100_000, done: true });
    assert.equal(
      text,
      [
        "audit: 40000 / 100000 records (20000/s, ETA 3s)",
        "audit: 70000 / 100000 records (20000/s, ETA 2s)",
        "audit: 100000 / 100000 records (27778/s, done in 4s)",
        "",
      ].join("\n"),
    );
  });
});
