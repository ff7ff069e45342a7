import { randomUUID } from "node:crypto";
import { AssignerProtocol, type Kafka, type PartitionAssigner } from "kafkajs";
import type { TopicRange } from "./range.ts";
import type { TopicMessage } from "./recompute.ts";

export interface ReadProgress {
  /** Records read and recomputed so far. */
  read: number;
  /** The offsets the range spans: its records, or more when the log has gaps (compaction, transactions). */
  total: number;
  /** True on the last report, once every partition of the range has been read and recomputed. */
  done?: boolean;
}

/**
 * Fetches of 8 MiB, up to 2 MiB of each partition (kafkajs' default is 10 MiB and 1 MiB). kafkajs
 * decodes a whole fetch response before it hands out any batch, so a larger fetch only delays the
 * workers' first records: on one kept topic of 1,000,000 records (bench:audit, two workers, 2026-12-05)
 * 64 MiB / 16 MiB gave the first applied records after 1.9-2.0 s and read + recompute 13.9-14.0 s,
 * 8 MiB / 2 MiB 1.1 s and 12.0-12.8 s (16/4 and 4/1 MiB in between, within the noise of 8/2), with less
 * main-thread CPU (3.2-3.5 against 3.7-4.0 s). The reader holds one fetch (and what the recompute has
 * not taken yet) in memory.
 */
export const AUDIT_FETCH = {
  maxBytes: 8 * 1024 * 1024,
  maxBytesPerPartition: 2 * 1024 * 1024,
} as const;

/**
 * Assigns the reader exactly the partitions that hold records of its range. The group is the reader's
 * own (random id), so it is its only member. kafkajs' default assigner hands it every partition of the
 * topic, and kafkajs then fetches and decodes the others from offset 0 until the range is read: a delta
 * audit of the last 150,000 records of one partition of a 1,000,000-record topic (six partitions) read
 * for 2.2-2.6 s and 2.8-3.1 CPU-s that way, 0.43-0.47 s and 0.5 CPU-s with this assigner (2026-12-06).
 */
export function rangeAssigner(topic: string, partitions: readonly number[]): PartitionAssigner {
  const name = "AgentmeterAuditRange";
  return () => ({
    name,
    version: 1,
    async assign({ members }) {
      const [first] = members.map(({ memberId }) => memberId).sort();
      return first === undefined
        ? []
        : [
            {
              memberId: first,
              memberAssignment: AssignerProtocol.MemberAssignment.encode({
                version: 1,
                assignment: { [topic]: [...partitions] },
                userData: Buffer.alloc(0),
              }),
            },
          ];
    },
    protocol({ topics }) {
      return {
        name,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.alloc(0) }),
      };
    },
  });
}

/** What the consumer of the batches may ask of the reader while it reads (feed.ts bounds its memory so). */
export interface ReadControl {
  /** Stops fetching a partition until resumed: what was handed over already stays handed over. */
  pause(partition: number): void;
  /** Fetches a paused partition again; a partition read to its end stays stopped. */
  resume(partition: number): void;
}

/** Message by message: reads every message of the range (see readTopicBatches). */
export async function readTopic(
  kafka: Kafka,
  range: TopicRange,
  onMessage: (partition: number, message: TopicMessage) => void,
  onProgress: (progress: ReadProgress) => void = () => {},
): Promise<void> {
  await readTopicBatches(
    kafka,
    range,
    (partition, messages) => {
      for (const message of messages) onMessage(partition, message);
    },
    onProgress,
  );
}

/**
 * Reads every message of the range, each partition in offset order, then stops. `onBatch` gets a
 * partition's messages of one fetch, `ended` true on the partition's last one (its messages may be
 * none); the next batch of that partition waits for the promise it returns (so a slower consumer of the
 * messages holds the reading back). Partitions are handled concurrently, and kafkajs fetches the next
 * batches of a broker only once every batch of its last fetch was handled: a consumer that must wait
 * for another partition's records pauses the partition through `control` instead of holding its batch.
 * A group of its own (random id, never committed, deleted afterwards) gives kafkajs' fetch loop without
 * touching the processor's group; kafkajs cannot assign partitions without a group.
 */
export async function readTopicBatches(
  kafka: Kafka,
  range: TopicRange,
  onBatch: (
    partition: number,
    messages: TopicMessage[],
    ended: boolean,
    control: ReadControl,
  ) => void | Promise<void>,
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
    ...AUDIT_FETCH,
    sessionTimeout: 30_000,
    partitionAssigners: [rangeAssigner(range.topic, [...ends.keys()])],
  });
  let read = 0;
  let remaining = ends.size;
  const atEnd = (partition: number) => (next.get(partition) ?? 0n) >= (ends.get(partition) ?? 0n);
  const held = new Set<number>();
  const control: ReadControl = {
    pause(partition) {
      if (!ends.has(partition) || atEnd(partition) || held.has(partition)) return;
      held.add(partition);
      consumer.pause([{ topic: range.topic, partitions: [partition] }]);
    },
    resume(partition) {
      if (!held.delete(partition) || atEnd(partition)) return;
      consumer.resume([{ topic: range.topic, partitions: [partition] }]);
    },
  };
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
      // One batch per partition at a time (kafkajs keeps each partition in order): a partition whose
      // consumer is busy does not hold the others back.
      partitionsConsumedConcurrently: Math.min(ends.size, 16),
      eachBatch: async ({ batch, heartbeat }) => {
        const partition = batch.partition;
        const end = ends.get(partition);
        const start = next.get(partition);
        if (end === undefined || start === undefined || start >= end) return;
        const messages: TopicMessage[] = [];
        for (const message of batch.messages) {
          // Offsets are compared as strings of equal length only rarely; BigInt keeps it exact and simple.
          const offset = BigInt(message.offset);
          if (offset < start) continue;
          if (offset >= end) break;
          messages.push(message);
        }
        // lastOffset() also covers compaction gaps and control records, so a partition always reaches its end.
        const reached = BigInt(batch.lastOffset()) + 1n;
        next.set(partition, reached > start ? reached : start);
        if (reached >= end) consumer.pause([{ topic: range.topic, partitions: [partition] }]);
        try {
          await onBatch(partition, messages, reached >= end, control);
        } catch (error) {
          fail(error);
          return;
        }
        read += messages.length;
        onProgress({ read, total });
        if (reached >= end) {
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
