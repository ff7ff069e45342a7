import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { LogOrderMerge } from "../../pipeline/audit/log-order.ts";
import { packetTransfer, packMessages, unpackMessages } from "../../pipeline/audit/packet.ts";
import type { TopicMessage } from "../../pipeline/audit/recompute.ts";
import { prng } from "../../pipeline/simulate/workload.ts";

/** A message named `p:offset`, with a log timestamp (or none). */
function message(partition: number, offset: number, timestamp: number | undefined): TopicMessage {
  return {
    offset: String(offset),
    key: Buffer.from(`${partition}:${offset}`),
    value: Buffer.from("x".repeat(10)),
    ...(timestamp === undefined ? {} : { timestamp: String(timestamp) }),
  };
}

/** Partitions' messages, each in offset order, from their log timestamps. */
function topic(times: Record<number, (number | undefined)[]>): Map<number, TopicMessage[]> {
  return new Map(
    Object.entries(times).map(([p, list]) => [
      Number(p),
      list.map((timestamp, offset) => message(Number(p), offset, timestamp)),
    ]),
  );
}

/** Feeds a merge in a random delivery (seeded): partitions taking turns, batches of 1 to 3. */
function merged(byPartition: Map<number, TopicMessage[]>, seed: number): string[] {
  const out: string[] = [];
  const merge = new LogOrderMerge(byPartition.keys(), (partition, m) => {
    assert.equal(m.key!.toString().split(":")[0], String(partition));
    out.push(m.key!.toString());
  });
  const random = prng(seed);
  const at = new Map([...byPartition.keys()].map((p) => [p, 0]));
  for (;;) {
    const open = [...at].filter(([p, from]) => from < byPartition.get(p)!.length).map(([p]) => p);
    if (open.length === 0) break;
    const partition = open[Math.floor(random() * open.length)]!;
    const list = byPartition.get(partition)!;
    const from = at.get(partition)!;
    const to = Math.min(list.length, from + 1 + Math.floor(random() * 3));
    at.set(partition, to);
    merge.add(partition, list.slice(from, to));
    if (to === list.length) merge.end(partition);
  }
  assert.equal(merge.queued, 0, "everything released once every partition ended");
  return out;
}

describe("audit: the log-order merge of partitions", () => {
  it("releases by log timestamp, then partition, each partition in offset order, whatever the delivery", () => {
    const byPartition = topic({ 0: [1, 4, 4, 9], 3: [2, 4, 5], 1: [4, 10] });
    const want = ["0:0", "3:0", "0:1", "0:2", "1:0", "3:1", "3:2", "0:3", "1:1"];
    for (let seed = 1; seed <= 20; seed++) assert.deepEqual(merged(byPartition, seed), want, `seed ${seed}`);
  });

  it("never reorders a partition: a timestamp that goes back waits for the messages before it", () => {
    const byPartition = topic({ 0: [5, 1, 6], 1: [3, 4] });
    const want = ["1:0", "1:1", "0:0", "0:1", "0:2"];
    for (let seed = 1; seed <= 10; seed++) assert.deepEqual(merged(byPartition, seed), want, `seed ${seed}`);
  });

  it("a message without a log timestamp takes the one before it on its partition (before all at the start)", () => {
    const byPartition = topic({ 0: [undefined, 7, undefined], 1: [5, 8] });
    const want = ["0:0", "1:0", "0:1", "0:2", "1:1"];
    for (let seed = 1; seed <= 10; seed++) assert.deepEqual(merged(byPartition, seed), want, `seed ${seed}`);
  });

  it("waits while a partition not read to its end has nothing queued, and releases once it ends", () => {
    const out: string[] = [];
    const merge = new LogOrderMerge([0, 1, 2], (_p, m) => out.push(m.key!.toString()));
    merge.add(1, [message(1, 0, 10), message(1, 1, 20)]);
    merge.add(2, [message(2, 0, 15)]);
    assert.deepEqual(out, [], "partition 0 may still bring an earlier message");
    assert.deepEqual(merge.waitingFor(), [0]);
    assert.equal(merge.queuedBytes(1), 2 * (3 + 10));
    merge.end(0);
    // 1:0 and 2:0 go; then partition 2 is empty and not ended, so 1:1 waits.
    assert.deepEqual(out, ["1:0", "2:0"]);
    assert.deepEqual(merge.waitingFor(), [2]);
    merge.end(2);
    assert.deepEqual(out, ["1:0", "2:0", "1:1"]);
    assert.throws(() => merge.add(2, [message(2, 1, 30)]), /read to its end/);
    assert.throws(() => merge.add(7, [message(7, 0, 30)]), /not in the range/);
    merge.finish();
    assert.equal(merge.queued, 0);
  });

  it("a packet carries several partitions' messages in one order to a worker thread", () => {
    const messages = [message(3, 0, 1), message(0, 5, 2), message(3, 1, 3)];
    const packet = packMessages(3, messages, [3, 0, 3]);
    const crossed = structuredClone(packet, { transfer: packetTransfer(packet) });
    const out: [number, string][] = [];
    unpackMessages(crossed, (partition, m) => out.push([partition, m.key!.toString()]));
    assert.deepEqual(out, [
      [3, "3:0"],
      [0, "0:5"],
      [3, "3:1"],
    ]);
    assert.throws(() => packMessages(3, messages, [3]), /one partition per message/);
  });
});
