import type { Document } from "mongodb";
import type { MongoLayout } from "./layout.ts";

/**
 * What the stores were written under, per input topic: every partition count the topic has had (a record
 * may sit on its key's partition under any of them) and its incarnation. A topic deleted and re-created
 * under the same name restarts its offsets at 0, so watermarks of the old one would take new records for
 * replays: each incarnation after the first gets its own source name (`topic~N`) for every watermark.
 */
export interface TopicRecord {
  partition_counts: number[];
  incarnation: number;
}

const COLLECTION = "AgentmeterTopics";

/** The name watermarks, ledgers and ClickHouse rows use for records of this incarnation of the topic. */
export function sourceName(topic: string, incarnation: number): string {
  // "~" is not allowed in Kafka topic names, so a source name never equals another topic's.
  return incarnation === 0 ? topic : `${topic}~${incarnation}`;
}

function toRecord(doc: Document | null): TopicRecord | undefined {
  if (doc === null) return undefined;
  return {
    partition_counts: Array.isArray(doc.partition_counts) ? doc.partition_counts.map(Number) : [],
    incarnation: typeof doc.incarnation === "number" ? doc.incarnation : 0,
  };
}

/** The topic's record as stored, or undefined when no processor has registered it. */
export async function readTopicRecord(layout: MongoLayout, topic: string): Promise<TopicRecord | undefined> {
  return toRecord(
    await layout
      .platform()
      .collection(COLLECTION)
      .findOne({ _id: topic } as Document),
  );
}

/**
 * Reads the topic's record and adds `partitions` to its counts if new (compare-and-set on the whole
 * record, so members joining at once agree). Returns the record as stored and the counts it had before.
 */
export async function registerTopic(
  layout: MongoLayout,
  topic: string,
  partitions: number,
): Promise<{ record: TopicRecord; previousCounts: number[] }> {
  const collection = layout.platform().collection(COLLECTION);
  for (;;) {
    const current = toRecord(await collection.findOne({ _id: topic } as Document));
    if (current === undefined) {
      const record = { partition_counts: [partitions], incarnation: 0 };
      try {
        await collection.insertOne({ _id: topic, ...record } as Document);
        return { record, previousCounts: [] };
      } catch {
        continue; // another member inserted it first: read again
      }
    }
    if (current.partition_counts.includes(partitions))
      return { record: current, previousCounts: current.partition_counts };
    const record = { ...current, partition_counts: [...current.partition_counts, partitions] };
    const result = await collection.replaceOne(
      {
        _id: topic,
        incarnation: current.incarnation,
        partition_counts: current.partition_counts,
      } as Document,
      record,
    );
    if (result.matchedCount === 1) return { record, previousCounts: current.partition_counts };
  }
}

/** Moves the topic to its next incarnation, once: a member that finds it moved already takes the new one. */
export async function nextIncarnation(
  layout: MongoLayout,
  topic: string,
  from: TopicRecord,
): Promise<TopicRecord> {
  const collection = layout.platform().collection(COLLECTION);
  const next = { partition_counts: from.partition_counts.slice(-1), incarnation: from.incarnation + 1 };
  await collection.replaceOne({ _id: topic, incarnation: from.incarnation } as Document, next);
  return toRecord(await collection.findOne({ _id: topic } as Document)) ?? next;
}
