import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Kafka } from "kafkajs";
import { RecomputeFeed } from "../../pipeline/audit/feed.ts";
import type { TopicMessage } from "../../pipeline/audit/recompute.ts";
import { readTopicBatches } from "../../pipeline/audit/topic-reader.ts";
import { mergeUnits, type RecomputeSetup, UnitRecompute } from "../../pipeline/audit/units.ts";
import { creditAuthorization } from "../../pipeline/auth/signature.ts";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import { APP_IDS, tokens, usage } from "./builders.ts";

/**
 * The reader and the log-order merge together (pipeline/audit/topic-reader.ts, feed.ts), over a stand-in
 * for kafkajs that behaves as it does where it matters: one batch at a time, never from a paused partition.
 */

const billing = parseBillingConfig({});

/** Users of app_456 whose account sits on `partition` of 2 (the merge needs no partition count change to run). */
function userOn(partition: number, skip: number): string {
  let found = -1;
  for (let n = 0; ; n++) {
    const user = `u${n}`;
    if (partitionForKey(`app:app_456:${user}`, 2) !== partition) continue;
    if (++found === skip) return user;
  }
}

/** Partition 0 from 10:00, partition 1 (its accounts' newer records) from 10:30: partition 1 runs ahead. */
function topic(): Map<number, TopicMessage[]> {
  const byPartition = new Map<number, TopicMessage[]>([
    [0, []],
    [1, []],
  ]);
  for (let i = 0; i < 120; i++) {
    for (const partition of [0, 1]) {
      const user = userOn(partition, i % 4);
      const at = new Date(Date.parse("2026-03-02T10:00:00Z") + (partition * 30 + i) * 60_000).toISOString();
      const record = usage({
        record_id: `r-${partition}-${i}`,
        ...APP_IDS,
        platform_user_id: user,
        occurred_at: at,
        ...tokens(300 + i),
      });
      const list = byPartition.get(partition)!;
      list.push({
        offset: String(list.length),
        key: Buffer.from(`app:app_456:${user}`),
        value: Buffer.from(JSON.stringify(record)),
        timestamp: String(Date.parse(at)),
      });
    }
  }
  return byPartition;
}

/**
 * A kafkajs stand-in: eachBatch one batch at a time, from the highest partition not paused (so the one
 * ahead is always preferred), batches of `size`; what it did is in `log`.
 */
function fakeKafka(byPartition: Map<number, TopicMessage[]>, size: number) {
  const log: string[] = [];
  const paused = new Set<number>();
  const at = new Map([...byPartition.keys()].map((p) => [p, 0]));
  let stalled = false;
  const consumer = {
    events: { CRASH: "consumer.crash" },
    on: () => {},
    connect: async () => {},
    subscribe: async () => {},
    disconnect: async () => {},
    seek: () => {},
    pause: (topics: { partitions: number[] }[]) => {
      for (const p of topics.flatMap(({ partitions }) => partitions)) {
        paused.add(p);
        log.push(`pause ${p}`);
      }
    },
    resume: (topics: { partitions: number[] }[]) => {
      for (const p of topics.flatMap(({ partitions }) => partitions)) {
        paused.delete(p);
        log.push(`resume ${p}`);
      }
    },
    run: async ({ eachBatch }: { eachBatch: (payload: unknown) => Promise<void> }) => {
      void (async () => {
        for (;;) {
          await new Promise((resolve) => setImmediate(resolve));
          const left = [...at].filter(([p, from]) => from < byPartition.get(p)!.length);
          if (left.length === 0) return;
          const open = left.filter(([p]) => !paused.has(p)).map(([p]) => p);
          if (open.length === 0) {
            stalled = true;
            log.push("stalled");
            return;
          }
          const partition = Math.max(...open);
          const list = byPartition.get(partition)!;
          const from = at.get(partition)!;
          const messages = list.slice(from, from + size);
          at.set(partition, from + messages.length);
          log.push(`batch ${partition}:${from}`);
          await eachBatch({
            batch: { partition, messages, lastOffset: () => messages[messages.length - 1]!.offset },
            heartbeat: async () => {},
          });
        }
      })();
    },
  };
  const admin = { connect: async () => {}, deleteGroups: async () => {}, disconnect: async () => {} };
  const kafka = { consumer: () => consumer, admin: () => admin } as unknown as Kafka;
  return { kafka, log, stalled: () => stalled };
}

describe("audit: the reader pauses a partition the log-order merge holds too much of", () => {
  it("pauses the partition ahead, reads the one behind, resumes it, and never stalls", async () => {
    const byPartition = topic();
    const setup: RecomputeSetup = {
      billing,
      maxRecordBytes: 65_536,
      partitionCounts: undefined,
      creditPolicy: creditAuthorization({}),
      partitions: [0, 1],
    };
    const range = {
      topic: "t",
      partitions: [...byPartition].map(([partition, list]) => ({
        partition,
        from: "0",
        to: String(list.length),
      })),
      complete: true,
    };
    const { kafka, log, stalled } = fakeKafka(byPartition, 10);
    const feed = await RecomputeFeed.create(setup, 0, new Map(), { laneBytes: 8_000 });
    assert.equal(feed.merged, true);
    let most = 0;
    await readTopicBatches(kafka, range, async (partition, messages, ended, control) => {
      await feed.batch(partition, messages, ended, control);
      most = Math.max(most, feed.queuedBytes(1));
    });
    const expected = await feed.finish();
    assert.equal(stalled(), false, log.join(", "));
    const firstPause = log.indexOf("pause 1");
    assert.ok(firstPause > 0, "the partition ahead was paused");
    assert.ok(log.indexOf("batch 0:0") > firstPause, "the one behind read while it was");
    assert.ok(log.indexOf("resume 1") > log.indexOf("batch 0:0"), "and it went on once taken below half");
    assert.ok(most < 8_000 + 10 * 600, `held at most its bound and a batch (${most})`);
    // The reader stops a partition for good at its end; nothing resumes it after.
    for (const partition of [0, 1]) {
      const last = log.findLastIndex((line) => line.startsWith(`batch ${partition}:`));
      assert.ok(log.indexOf(`pause ${partition}`, last) > last, `partition ${partition} stopped at its end`);
      assert.equal(
        log.indexOf(`resume ${partition}`, last),
        -1,
        `partition ${partition} never resumed after`,
      );
    }
    // The figures: those of the records applied in log-time order.
    const units = new UnitRecompute(setup);
    const all = [...byPartition].flatMap(([p, list]) => list.map((m) => [p, m] as const));
    all.sort(([pa, a], [pb, b]) => Number(a.timestamp) - Number(b.timestamp) || pa - pb);
    for (const [p, m] of all) units.add(p, m);
    assert.deepEqual(expected, mergeUnits(units.finish()));
    assert.equal(expected.counts.records, 240);
  });
});
