import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Admin, Kafka, PartitionMetadata, Producer, ProducerRecord, RecordMetadata } from "kafkajs";
import { PartitionSplitProducer, TopicMetadataCache } from "../../pipeline/partition-split-producer.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";

/**
 * The split alone, over a stand-in producer and admin (the broker's side, a SIGKILL under load with three
 * brokers, is test/int/cluster.int.test.ts): every request kafkajs is given carries one partition, chosen
 * as the processor checks it, in the order the records came.
 */
class StandIn {
  sent: ProducerRecord[] = [];
  async send(record: ProducerRecord): Promise<RecordMetadata[]> {
    this.sent.push(record);
    return record.messages.map((_, i) => ({
      topicName: record.topic,
      partition: record.messages[0]!.partition!,
      errorCode: 0,
      baseOffset: String(i),
    }));
  }
}

function partitions(count: number): PartitionMetadata[] {
  return Array.from({ length: count }, (_, partitionId) => ({
    partitionErrorCode: 0,
    partitionId,
    leader: partitionId % 3,
    replicas: [0, 1, 2],
    isr: [0, 1, 2],
  }));
}

function fakeKafka(counts: Record<string, number>, clock = { now: 0 }) {
  const reads: string[] = [];
  let failNext = false;
  const admin = {
    connect: async () => {},
    disconnect: async () => {},
    fetchTopicMetadata: async ({ topics }: { topics: string[] }) => {
      reads.push(...topics);
      if (failNext) {
        failNext = false;
        throw new Error("broker gone");
      }
      return { topics: topics.map((name) => ({ name, partitions: partitions(counts[name] ?? 0) })) };
    },
  } as unknown as Admin;
  const kafka = { admin: () => admin } as unknown as Kafka;
  const cache = new TopicMetadataCache(kafka, () => clock.now);
  return { cache, reads, clock, failOnce: () => (failNext = true) };
}

describe("partition split: one partition per kafkajs request", () => {
  it("given a batch over two topics, then each request holds one topic and one partition, the processor's, in order", async () => {
    const standIn = new StandIn();
    const { cache } = fakeKafka({ input: 6, events: 3 });
    const producer = new PartitionSplitProducer(standIn as unknown as Producer, cache);
    const keys = Array.from({ length: 40 }, (_, i) => `app:a:user-${i % 9}`);
    const results = await producer.sendBatch({
      acks: -1,
      topicMessages: [
        { topic: "input", messages: keys.map((key, i) => ({ key, value: String(i) })) },
        {
          topic: "events",
          messages: [
            { key: "chat-1", value: "e1" },
            { key: "chat-2", value: "e2" },
          ],
        },
      ],
    });

    assert.equal(results.length, 42, "one result per record");
    for (const request of standIn.sent) {
      const inRequest = new Set(request.messages.map((m) => m.partition));
      assert.equal(inRequest.size, 1, `one partition per request: ${[...inRequest]}`);
      assert.equal(request.acks, -1, "the batch's options on every part");
    }
    for (const [i, key] of keys.entries()) {
      const request = standIn.sent.find(
        (r) => r.topic === "input" && r.messages.some((m) => m.value === String(i)),
      );
      assert.equal(request?.messages[0]?.partition, partitionForKey(key, 6), `${key} on its key's partition`);
    }
    for (const request of standIn.sent.filter((r) => r.topic === "input")) {
      const order = request.messages.map((m) => Number(m.value));
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
        "records keep their order within a partition",
      );
    }
    assert.equal(
      new Set(standIn.sent.map((r) => `${r.topic}/${r.messages[0]!.partition}`)).size,
      standIn.sent.length,
    );
  });

  it("given a record with a partition of its own, then it goes there", async () => {
    const standIn = new StandIn();
    const producer = new PartitionSplitProducer(
      standIn as unknown as Producer,
      fakeKafka({ input: 6 }).cache,
    );
    await producer.send({ topic: "input", messages: [{ key: "k", value: "v", partition: 4 }] });
    assert.deepEqual(
      standIn.sent.map((r) => r.messages.map((m) => m.partition)),
      [[4]],
    );
  });

  it("reads a topic's partitions once per 30 s, and again after a failed read", async () => {
    const { cache, reads, clock, failOnce } = fakeKafka({ input: 6 });
    await cache.partitionsOf("input");
    await cache.partitionsOf("input");
    assert.deepEqual(reads, ["input"], "kept");
    clock.now = 31_000;
    failOnce();
    await assert.rejects(cache.partitionsOf("input"), /broker gone/);
    assert.equal((await cache.partitionsOf("input")).length, 6, "a failed read is not kept");
    assert.deepEqual(reads, ["input", "input", "input"]);
  });

  it("refuses a topic without partitions with a coded error, sending nothing", async () => {
    const standIn = new StandIn();
    const producer = new PartitionSplitProducer(standIn as unknown as Producer, fakeKafka({}).cache);
    await assert.rejects(producer.send({ topic: "missing", messages: [{ value: "v" }] }), {
      code: "PRODUCE_FAILED",
    });
    assert.equal(standIn.sent.length, 0);
  });
});
