import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Admin, Kafka, PartitionMetadata, Producer, ProducerBatch, RecordMetadata } from "kafkajs";
import { AcknowledgedSendProducer, TopicMetadataCache } from "../../pipeline/acknowledged-send-producer.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";

/**
 * The wrapper alone, over a stand-in producer and admin (kafkajs' own send losing a partition is
 * test/unit/kafkajs-send-loss.test.ts; the broker's side, a SIGKILL under load with three brokers, is
 * test/int/cluster.int.test.ts): every record is placed on the partition the processor checks, the batch
 * goes to kafkajs whole, and partitions the brokers did not answer for are sent again.
 */
class StandIn {
  sent: ProducerBatch[] = [];
  /** Partitions ("topic/partition") the next sends leave unanswered, one send each. */
  unanswered: string[][] = [];
  async sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    this.sent.push(batch);
    const skip = new Set(this.unanswered.shift() ?? []);
    const answers: RecordMetadata[] = [];
    for (const { topic, messages } of batch.topicMessages ?? [])
      for (const partition of new Set(messages.map((m) => m.partition!)))
        if (!skip.has(`${topic}/${partition}`))
          answers.push({ topicName: topic, partition, errorCode: 0, baseOffset: "0" });
    return answers;
  }
  placed(send = 0): { topic: string; partition: number; value: string }[] {
    return (this.sent[send]?.topicMessages ?? []).flatMap(({ topic, messages }) =>
      messages.map((m) => ({ topic, partition: m.partition!, value: String(m.value) })),
    );
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

describe("acknowledged send: every partition written to is answered for", () => {
  it("given a batch over two topics, then it is one send, each record on its key's partition, in order", async () => {
    const standIn = new StandIn();
    const { cache } = fakeKafka({ input: 6, events: 3 });
    const producer = new AcknowledgedSendProducer(standIn as unknown as Producer, cache);
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

    assert.equal(standIn.sent.length, 1, "one send to kafkajs");
    assert.equal(standIn.sent[0]?.acks, -1, "with the batch's options");
    const placed = standIn.placed();
    assert.equal(placed.length, 42, "every record sent once");
    for (const [i, key] of keys.entries()) {
      const record = placed.find((r) => r.topic === "input" && r.value === String(i));
      assert.equal(record?.partition, partitionForKey(key, 6), `${key} on its key's partition`);
    }
    for (const partition of new Set(placed.map((r) => r.partition))) {
      const order = placed
        .filter((r) => r.topic === "input" && r.partition === partition)
        .map((r) => Number(r.value));
      assert.deepEqual(
        order,
        [...order].sort((a, b) => a - b),
        "records keep their order within a partition",
      );
    }
    assert.deepEqual(
      results.map((r) => `${r.topicName}/${r.partition}`).sort(),
      [...new Set(placed.map((r) => `${r.topic}/${r.partition}`))].sort(),
      "one answer per partition written to",
    );
  });

  it("given a send resolved without an answer for one partition, then only that partition's records are sent again", async () => {
    const standIn = new StandIn();
    const heard: string[][] = [];
    const producer = new AcknowledgedSendProducer(
      standIn as unknown as Producer,
      fakeKafka({ input: 6 }).cache,
      (unanswered) => heard.push([...unanswered]),
    );
    const messages = [0, 1, 2, 3].map((partition) => ({ value: `p${partition}`, partition }));
    standIn.unanswered = [["input/2"], ["input/2"]];

    const results = await producer.send({ topic: "input", acks: -1, messages });

    assert.equal(standIn.sent.length, 3, "sent whole, then partition 2 twice more");
    assert.deepEqual(standIn.placed(1), [{ topic: "input", partition: 2, value: "p2" }]);
    assert.deepEqual(standIn.placed(2), [{ topic: "input", partition: 2, value: "p2" }]);
    assert.deepEqual(heard, [["input/2"], ["input/2"]], "each unanswered round reported");
    assert.deepEqual(results.map((r) => r.partition).sort(), [0, 1, 2, 3]);
  });

  it("given a partition never answered for, then the send fails with PRODUCE_FAILED after five sends", async () => {
    const standIn = new StandIn();
    const producer = new AcknowledgedSendProducer(
      standIn as unknown as Producer,
      fakeKafka({ input: 6 }).cache,
    );
    standIn.unanswered = Array.from({ length: 10 }, () => ["input/1"]);
    await assert.rejects(
      producer.send({ topic: "input", acks: -1, messages: [{ value: "v", partition: 1 }] }),
      { code: "PRODUCE_FAILED", message: /input\/1 after 5 sends/ },
    );
    assert.equal(standIn.sent.length, 5);
  });

  it("given a record with a partition of its own, then it goes there", async () => {
    const standIn = new StandIn();
    const producer = new AcknowledgedSendProducer(
      standIn as unknown as Producer,
      fakeKafka({ input: 6 }).cache,
    );
    await producer.send({ topic: "input", messages: [{ key: "k", value: "v", partition: 4 }] });
    assert.deepEqual(standIn.placed(), [{ topic: "input", partition: 4, value: "v" }]);
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
    const producer = new AcknowledgedSendProducer(standIn as unknown as Producer, fakeKafka({}).cache);
    await assert.rejects(producer.send({ topic: "missing", messages: [{ value: "v" }] }), {
      code: "PRODUCE_FAILED",
    });
    assert.equal(standIn.sent.length, 0);
  });
});
