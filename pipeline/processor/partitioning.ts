/**
 * Per-account order rests on every record of an account sitting on one partition: the partition its key
 * hashes to under the documented partitioner, Kafka's murmur2 (the Java client's and kafkajs' default;
 * librdkafka's `murmur2_random`). librdkafka's own default (`consistent_random`, crc32) puts most keys
 * elsewhere, so the processor verifies each record's partition instead of trusting the producer.
 *
 * The hash is computed here, not through kafkajs' partitioner: kafkajs does the arithmetic on 64-bit
 * `Long` objects, a dozen allocations a key, and checking every record's partition that way took a tenth
 * of the audit's CPU. Only the low 32 bits of kafkajs' values are ever read (`toInt()`), and the low 32
 * bits of a product or an xor depend only on the low 32 bits of the operands, so 32-bit `Math.imul`
 * arithmetic gives the same hash: test/unit/partitioning.test.ts checks it against kafkajs' own function
 * on generated keys (any UTF-8) and partition counts. The producers place records with the same hash
 * (pipeline/kafka-partitioner.ts).
 */

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 of the first `length` bytes, as a signed 32-bit integer (Java's `Utils.murmur2`). */
export function murmur2(data: Uint8Array, length = data.length): number {
  let h = SEED ^ length;
  const whole = length & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The last one to three bytes, as the Java original's falling-through switch takes them.
  const rest = length & 3;
  if (rest === 3) h ^= data[whole + 2]! << 16;
  if (rest >= 2) h ^= data[whole + 1]! << 8;
  if (rest >= 1) {
    h ^= data[whole]!;
    h = Math.imul(h, M);
  }
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h | 0;
}

/** A key's murmur2 over its UTF-8 bytes: ASCII keys (every account key) without allocating. */
const scratch = new Uint8Array(256);
export function keyHash(key: string): number {
  if (key.length <= scratch.length) {
    let ascii = true;
    for (let i = 0; i < key.length; i++) {
      const code = key.charCodeAt(i);
      if (code > 0x7f) {
        ascii = false;
        break;
      }
      scratch[i] = code;
    }
    if (ascii) return murmur2(scratch, key.length);
  }
  return murmur2(Buffer.from(key, "utf8"));
}

/** The partition of a murmur2 hash among `partitions`, as kafkajs and the Java client take it. */
export function partitionOfHash(hash: number, partitions: number): number {
  // kafkajs' and Java's toPositive: the sign bit cleared, not the absolute value.
  return (hash & 0x7fffffff) % partitions;
}

/** The partition a key lands on among `partitions` under murmur2. */
export function partitionForKey(key: string, partitions: number): number {
  return partitionOfHash(keyHash(key), partitions);
}

/**
 * Where a record under `key` may legitimately sit: its key's partition under any partition count the
 * topic has had (records produced before a partition increase stay on their old partition).
 */
export function isKeyPartition(key: string, partition: number, partitionCounts: readonly number[]): boolean {
  const hash = keyHash(key);
  for (const count of partitionCounts) if (partitionOfHash(hash, count) === partition) return true;
  return false;
}
