import { randomUUID } from "node:crypto";
import type { Kafka } from "kafkajs";
import type { TopicRange } from "./range.ts";
import type { TopicMessage } from "./recompute.ts";

export interface ReadProgress {
  read: number;
  total: number;
}

/**
 * Reads every message of the range, partition by partition in offset order, then stops. A group of its
 * own (random id, never committed, deleted afterwards) gives kafkajs' fetch loop without touching the
 * processor's group; kafkajs cannot assign partitions without a group.
 */
export async function readTopic(
  kafka: Kafka,
  range: TopicRange,
  onMessage: (partition: number, message: TopicMessage) => void,
  onProgress: (progress: ReadProgress) => void = () => {},
): Promise<void> {
  const ends = new Map<number, bigint>();
  const next = new Map<number, bigint>();
  let total = 0;
  for (const { partition, from, to } of range.partitions) {
    if (BigInt(from) >= BigInt(to)) continue;
    ends.set(partition, BigInt(to));
    next.set(partition, BigInt(from));
    total += Number(BigInt(to) - BigInt(from));
  }
  if (ends.size === 0) return;

  const groupId = `agentmeter-audit-${randomUUID()}`;
  const consumer = kafka.consumer({
    groupId,
    maxBytesPerPartition: 8 * 1024 * 1024,
    maxBytes: 32 * 1024 * 1024,
    sessionTimeout: 30_000,
  });
  let read = 0;
  let remaining = ends.size;
  let finish!: () => void;
  let fail!: (error: unknown) => void;
  const done = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  consumer.on(consumer.events.CRASH, (event) => {
    if (!event.payload.restart) fail(event.payload.error);
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: range.topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat }) => {
        const partition = batch.partition;
        const end = ends.get(partition);
        const start = next.get(partition);
        if (end === undefined || start === undefined || start >= end) return;
        for (const message of batch.messages) {
          // Offsets are compared as strings of equal length only rarely; BigInt keeps it exact and simple.
          const offset = BigInt(message.offset);
          if (offset < start) continue;
          if (offset >= end) break;
          onMessage(partition, message);
          read++;
        }
        // lastOffset() also covers compaction gaps and control records, so a partition always reaches its end.
        const reached = BigInt(batch.lastOffset()) + 1n;
        next.set(partition, reached > start ? reached : start);
        onProgress({ read, total });
        if (reached >= end) {
          consumer.pause([{ topic: range.topic, partitions: [partition] }]);
          remaining--;
          if (remaining === 0) finish();
        }
        await heartbeat();
      },
    });
    for (const [partition, from] of next) {
      if (from > 0n) consumer.seek({ topic: range.topic, partition, offset: from.toString() });
    }
    await done;
  } finally {
    await consumer.disconnect().catch(() => {});
    const admin = kafka.admin();
    // Best effort: an empty group expires on its own anyway (offsets.retention) since nothing was committed.
    await admin
      .connect()
      .then(() => admin.deleteGroups([groupId]))
      .catch(() => {})
      .finally(() => admin.disconnect().catch(() => {}));
  }
}
