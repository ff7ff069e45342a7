import type { Admin } from "kafkajs";
import type { UsageEventsSink } from "../../sinks/clickhouse/usage-events.ts";
import type { MongoLayout } from "../../sinks/mongo/layout.ts";
import { nextIncarnation, registerTopic, sourceName } from "../../sinks/mongo/topic-registry.ts";
import type { Logger } from "../log.ts";
import type { Placement } from "./partition-worker.ts";

/**
 * Compares the input topic with what the stores were written under, at start and on every group join:
 * - a new partition count is recorded (records produced before the change stay valid on their old
 *   partition; an account's newer records follow its key to the new one) and logged;
 * - a topic deleted and re-created restarts its offsets, so a partition whose stored progress (the highest
 *   offset with a usage row in ClickHouse) is at or past its log end cannot be the same log: the topic
 *   moves to its next incarnation, and every watermark of the old one stops applying.
 */
export async function checkInputTopic(
  admin: Admin,
  layout: MongoLayout,
  usageEvents: UsageEventsSink,
  topic: string,
  logger: Logger,
): Promise<Placement> {
  const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
  const partitions = topics[0]?.partitions.length ?? 0;
  let { record, previousCounts } = await registerTopic(layout, topic, partitions);
  if (previousCounts.length > 0 && !previousCounts.includes(partitions)) {
    logger.warn(
      { topic, partitions, before: previousCounts },
      "input topic's partition count changed: records keep their account's order only per partition; accounts follow their keys to new partitions",
    );
  }
  const ends = await admin.fetchTopicOffsets(topic);
  const source = sourceName(topic, record.incarnation);
  const progress = await Promise.all(
    ends.map(async (end) => ({
      partition: end.partition,
      high: BigInt(end.high),
      stored: await usageEvents.storedWatermark(source, end.partition),
    })),
  );
  const behind = progress.filter((p) => p.stored >= 0n && p.stored >= p.high);
  if (behind.length > 0) {
    record = await nextIncarnation(layout, topic, record);
    ({ record } = await registerTopic(layout, topic, partitions));
    logger.warn(
      {
        topic,
        incarnation: record.incarnation,
        partitions: behind.map((p) => ({
          partition: p.partition,
          logEnd: String(p.high),
          stored: String(p.stored),
        })),
      },
      "input topic was re-created (stored progress is past its log end): its records are billed as a new source",
    );
  }
  return { source: sourceName(topic, record.incarnation), partitionCounts: record.partition_counts };
}
