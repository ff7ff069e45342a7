import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { describe, it } from "node:test";
import fc from "fast-check";
import { Partitioners, type PartitionMetadata } from "kafkajs";
import { murmur2Partitioner } from "../../pipeline/kafka-partitioner.ts";
import { isKeyPartition, murmur2, partitionForKey } from "../../pipeline/processor/partitioning.ts";

// kafkajs' own murmur2 (64-bit Long arithmetic), the reference the 32-bit one must equal.
const kafkajsMurmur2 = createRequire(import.meta.url)(
  "kafkajs/src/producer/partitioners/default/murmur2.js",
) as (key: Buffer | string) => number;

function metadataOf(partitions: number, leaderless: ReadonlySet<number> = new Set()): PartitionMetadata[] {
  return Array.from({ length: partitions }, (_, partitionId) => ({
    partitionId,
    leader: leaderless.has(partitionId) ? -1 : 0,
    partitionErrorCode: 0,
    replicas: [0],
    isr: [0],
  }));
}

function kafkajsPartition(key: string | Buffer, partitions: number): number {
  return Partitioners.DefaultPartitioner()({
    topic: "t",
    partitionMetadata: metadataOf(partitions),
    message: { key, value: null },
  });
}

// Account keys, ASCII of any length (past the 256-byte scratch too), and any Unicode (UTF-8 of 1-4 bytes).
const keys = fc.oneof(
  fc.stringMatching(/^(platform|app):[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_-]{1,64})?$/),
  fc.string({ unit: "binary-ascii", maxLength: 300 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 40 }),
);

describe("murmur2 partitioning", () => {
  it("hashes every key exactly as kafkajs' murmur2 does", () => {
    fc.assert(
      fc.property(keys, (key) => {
        const bytes = Buffer.from(key, "utf8");
        assert.equal(murmur2(bytes), kafkajsMurmur2(bytes), JSON.stringify(key));
      }),
      { numRuns: 3000 },
    );
  });

  it("puts every key on the partition kafkajs' default partitioner does, for any partition count", () => {
    fc.assert(
      fc.property(keys, fc.integer({ min: 1, max: 200 }), (key, partitions) => {
        const expected = kafkajsPartition(key, partitions);
        assert.equal(partitionForKey(key, partitions), expected);
        assert.equal(isKeyPartition(key, expected, [partitions]), true);
        assert.equal(isKeyPartition(key, (expected + 1) % (partitions + 1), [partitions]), false);
      }),
      { numRuns: 2000 },
    );
  });

  it("knows Kafka's published values (the Java client's test vectors)", () => {
    // From Kafka's UtilsTest.testMurmur2 (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
    const vectors: [string, number][] = [
      ["21", -973932308],
      ["foobar", -790332482],
      ["a-little-bit-long-string", -985981536],
      ["a-little-bit-longer-string", -1486304829],
      ["lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971],
      ["abc", 479470107],
    ];
    for (const [key, hash] of vectors) assert.equal(murmur2(Buffer.from(key)), hash, key);
  });

  it("a key is on its partition under any partition count the topic has had", () => {
    const key = "app:app_1:user_1";
    const counts = [3, 6, 12];
    for (const count of counts) assert.equal(isKeyPartition(key, partitionForKey(key, count), counts), true);
    const nowhere = [...Array(12).keys()].find((p) => counts.every((c) => partitionForKey(key, c) !== p));
    assert.ok(nowhere !== undefined);
    assert.equal(isKeyPartition(key, nowhere, counts), false);
  });

  it("the producers' partitioner places every keyed message where kafkajs' default partitioner does", () => {
    fc.assert(
      fc.property(keys, fc.boolean(), fc.integer({ min: 1, max: 200 }), (text, asBuffer, partitions) => {
        const key = asBuffer ? Buffer.from(text, "utf8") : text;
        const placed = murmur2Partitioner()({
          topic: "t",
          partitionMetadata: metadataOf(partitions),
          message: { key, value: null },
        });
        assert.equal(placed, kafkajsPartition(key, partitions));
      }),
      { numRuns: 2000 },
    );
  });

  it("the producers' partitioner keeps a message's own partition, and spreads unkeyed ones over partitions with a leader", () => {
    const partitioner = murmur2Partitioner();
    const partitionMetadata = metadataOf(6, new Set([1, 4]));
    assert.equal(
      partitioner({ topic: "t", partitionMetadata, message: { key: "k", value: null, partition: 4 } }),
      4,
    );
    const unkeyed = new Set<number>();
    for (let i = 0; i < 40; i++)
      unkeyed.add(partitioner({ topic: "t", partitionMetadata, message: { key: null, value: null } }));
    assert.deepEqual([...unkeyed].sort(), [0, 2, 3, 5]);
  });
});
