import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { comparedAccount, diffStores } from "../../pipeline/audit/diff.ts";
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
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { accountKeyOf, SCHEMA_VERSION } from "../../schemas/index.ts";
import { correctionsOf } from "../support/corrections.ts";

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
        const doc = structuredClone(account) as unknown as Record<string, unknown>;
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
