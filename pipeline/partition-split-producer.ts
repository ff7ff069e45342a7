import {
  type Admin,
  type Kafka,
  type Message,
  Partitioners,
  type PartitionMetadata,
  type Producer,
  type ProducerBatch,
  type ProducerRecord,
  type RecordMetadata,
} from "kafkajs";
import { AgentmeterError } from "../schemas/errors.ts";
import { DelegatingProducer } from "./delegating-producer.ts";

/**
 * kafkajs 2.2.4 can resolve a send whose records never reached the log. One send goes to every leader of
 * its partitions at once and remembers, across its retries, which brokers answered; a retry (after a
 * broker died) sends again only to brokers that have not answered. When the dead broker's partitions have
 * moved to a broker that had already answered for its own, their records are sent to no one, and the
 * send resolves (sendMessages.js, `brokersWithoutResponse`; kafkajs issue 1303, pull request 1798). Seen
 * here: 314 of 30,000 acknowledged records missing from the topic after a broker SIGKILL
 * (test/int/cluster.int.test.ts).
 *
 * So each request kafkajs makes carries one partition: a send is split by partition (chosen here by the
 * same murmur2 partitioner kafkajs uses) and each part is a send of its own, whose retries then only
 * ever concern that partition's current leader.
 */
export class PartitionSplitProducer extends DelegatingProducer {
  private readonly partitioner = Partitioners.DefaultPartitioner();

  constructor(
    private readonly inner: Producer,
    private readonly metadata: TopicMetadataCache,
  ) {
    super();
  }

  connect(): Promise<void> {
    return this.inner.connect();
  }

  async disconnect(): Promise<void> {
    try {
      await this.inner.disconnect();
    } finally {
      await this.metadata.close();
    }
  }

  send({ topic, messages, ...options }: ProducerRecord): Promise<RecordMetadata[]> {
    return this.sendBatch({ ...options, topicMessages: [{ topic, messages }] });
  }

  async sendBatch({ topicMessages = [], ...options }: ProducerBatch): Promise<RecordMetadata[]> {
    const parts: ProducerRecord[] = [];
    for (const { topic, messages } of topicMessages) {
      if (messages.length === 0) continue;
      const partitionMetadata = await this.metadata.partitionsOf(topic);
      const byPartition = new Map<number, Message[]>();
      for (const message of messages) {
        const partition = this.partitioner({ topic, partitionMetadata, message });
        const group = byPartition.get(partition);
        const placed = { ...message, partition };
        if (group === undefined) byPartition.set(partition, [placed]);
        else group.push(placed);
      }
      for (const group of byPartition.values()) parts.push({ ...options, topic, messages: group });
    }
    const results = await Promise.all(parts.map((part) => this.inner.send(part)));
    return results.flat();
  }

  protected target(): Producer {
    return this.inner;
  }
}

/** How long a topic's partition list is trusted: a topic given more partitions is seen within this. */
const METADATA_MAX_AGE_MS = 30_000;

/**
 * Partition lists of topics, read with an admin client of the producer's Kafka client (connected on first
 * use) and kept METADATA_MAX_AGE_MS. A failed read is not kept: the send fails and its caller retries.
 */
export class TopicMetadataCache {
  private admin: Promise<Admin> | undefined;
  private readonly topics = new Map<string, { at: number; partitions: Promise<PartitionMetadata[]> }>();

  constructor(
    private readonly kafka: Pick<Kafka, "admin">,
    private readonly now: () => number = Date.now,
  ) {}

  partitionsOf(topic: string): Promise<PartitionMetadata[]> {
    const cached = this.topics.get(topic);
    if (cached !== undefined && this.now() - cached.at < METADATA_MAX_AGE_MS) return cached.partitions;
    const partitions = this.read(topic);
    this.topics.set(topic, { at: this.now(), partitions });
    partitions.catch(() => {
      if (this.topics.get(topic)?.partitions === partitions) this.topics.delete(topic);
    });
    return partitions;
  }

  private async read(topic: string): Promise<PartitionMetadata[]> {
    this.admin ??= this.connect();
    const admin = await this.admin;
    const { topics } = await admin.fetchTopicMetadata({ topics: [topic] });
    const partitions = topics.find((entry) => entry.name === topic)?.partitions ?? [];
    if (partitions.length === 0)
      throw new AgentmeterError("PRODUCE_FAILED", `topic ${topic} has no partitions (does it exist?)`);
    return [...partitions].sort((a, b) => a.partitionId - b.partitionId);
  }

  private async connect(): Promise<Admin> {
    const admin = this.kafka.admin();
    try {
      await admin.connect();
      return admin;
    } catch (error) {
      this.admin = undefined;
      throw error;
    }
  }

  async close(): Promise<void> {
    const admin = this.admin;
    this.admin = undefined;
    this.topics.clear();
    if (admin !== undefined) await (await admin.catch(() => undefined))?.disconnect().catch(() => undefined);
  }
}
