import type { PartitionMetadata } from "kafkajs";
import { DEFAULT_PARTITIONER } from "../kafka.ts";

/**
 * Per-account order rests on every record of an account sitting on one partition: the partition its key
 * hashes to under the documented partitioner, Kafka's murmur2 (the Java client's and kafkajs' default;
 * librdkafka's `murmur2_random`). librdkafka's own default (`consistent_random`, crc32) puts most keys
 * elsewhere, so the processor verifies each record's partition instead of trusting the producer.
 */
const partitioner = DEFAULT_PARTITIONER();
const metadataCache = new Map<number, PartitionMetadata[]>();

function metadataOf(partitions: number): PartitionMetadata[] {
  let metadata = metadataCache.get(partitions);
  if (metadata === undefined) {
    metadata = Array.from({ length: partitions }, (_, partitionId) => ({
      partitionId,
      leader: 0,
      partitionErrorCode: 0,
      replicas: [0],
      isr: [0],
    }));
    metadataCache.set(partitions, metadata);
  }
  return metadata;
}

/** The partition a key lands on among `partitions` under murmur2. */
export function partitionForKey(key: string, partitions: number): number {
  return partitioner({
    topic: "",
    partitionMetadata: metadataOf(partitions),
    message: { key, value: null },
  });
}

/**
 * Where a record under `key` may legitimately sit: its key's partition under any partition count the
 * topic has had (records produced before a partition increase stay on their old partition).
 */
export function isKeyPartition(key: string, partition: number, partitionCounts: readonly number[]): boolean {
  return partitionCounts.some((count) => partitionForKey(key, count) === partition);
}
