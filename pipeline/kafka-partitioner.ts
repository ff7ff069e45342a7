import { type ICustomPartitioner, Partitioners } from "kafkajs";
import { keyHash, murmur2, partitionOfHash } from "./processor/partitioning.ts";

/**
 * kafkajs' default partitioner (`Partitioners.DefaultPartitioner`) with the 32-bit murmur2 of
 * processor/partitioning.ts: the same partition for every message (a given partition, else the key's
 * murmur2 over all the topic's partitions, else kafkajs' own round robin over the available ones, which
 * it is handed), without kafkajs' `Long` arithmetic. Placing the processor's outputs before each send
 * (acknowledged-send-producer.ts) with kafkajs' hash took 2% of the processor's CPU at 1,000 holds/s.
 *
 * Not in processor/partitioning.ts: the audit's worker bundle takes that module, and kafkajs (CommonJS,
 * needed here for the unkeyed round robin) cannot load inside an ES module bundle.
 */
export const murmur2Partitioner: ICustomPartitioner = () => {
  const unkeyed = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message, partitionMetadata } = args;
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key === null || key === undefined) return unkeyed(args);
    // kafkajs hashes a Buffer's bytes, anything else as the UTF-8 of String(key).
    const hash = Buffer.isBuffer(key) ? murmur2(key) : keyHash(String(key));
    return partitionOfHash(hash, partitionMetadata.length);
  };
};
