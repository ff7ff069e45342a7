import type {
  Admin,
  Kafka,
  Message,
  PartitionMetadata,
  Producer,
  ProducerBatch,
  ProducerRecord,
  RecordMetadata,
  TopicMessages,
} from "kafkajs";
import { AgentmeterError } from "../schemas/errors.ts";
import { DelegatingProducer } from "./delegating-producer.ts";
import { murmur2Partitioner } from "./kafka-partitioner.ts";

/**
 * kafkajs 2.2.4 can resolve a send whose records never reached the log. One send goes to every leader of
 * its partitions at once and remembers, across its retries, which brokers answered; a retry (after a
 * broker died) sends again only to brokers that have not answered. When the dead broker's partitions have
 * moved to a broker that had already answered for its own, their records are sent to no one, and the
 * send resolves (sendMessages.js, `brokersWithoutResponse`; kafkajs issue 1303, pull request 1798). Seen
 * here: 314 of 30,000 acknowledged records missing from the topic after a broker SIGKILL
 * (test/int/cluster.int.test.ts). Such a send resolves without an answer for those partitions.
 *
 * So every record is placed on its partition here (by kafkajs' default rule, murmur2Partitioner), the
 * whole send goes to kafkajs as one (one request per leader, as kafkajs batches it), and the answer is
 * checked: the records of every partition the brokers did not answer for are sent again, until each is
 * answered.
 * Sending them again cannot write a record twice: kafkajs advances an idempotent producer's sequence of a
 * partition only with the broker's answer, so a resend carries the sequence a write already made would
 * have, and the broker answers it as a duplicate. (One send per partition also avoided the loss, but an
 * idempotent producer's requests to a broker queue behind its lock one at a time, so a processor batch's
 * outputs over a dozen partitions took a dozen round trips: 100-250 ms per publish at 100 holds/s.)
 */
export class AcknowledgedSendProducer extends DelegatingProducer {
  private readonly partitioner = murmur2Partitioner();

  constructor(
    private readonly inner: Producer,
    private readonly metadata: TopicMetadataCache,
    private readonly onUnanswered?: (unanswered: readonly string[]) => void,
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
    const unanswered = await this.place(topicMessages);
    const answers: RecordMetadata[] = [];
    for (let round = 1; unanswered.size > 0; round++) {
      const result = await this.inner.sendBatch({ ...options, topicMessages: asTopicMessages(unanswered) });
      // acks=0 asks for no answer: there is nothing to check.
      if (options.acks === 0) return result;
      for (const answer of result) {
        if (unanswered.delete(partitionKey(answer.topicName, answer.partition))) answers.push(answer);
      }
      if (unanswered.size === 0) break;
      this.onUnanswered?.([...unanswered.keys()]);
      if (round === MAX_ROUNDS)
        throw new AgentmeterError(
          "PRODUCE_FAILED",
          `the brokers answered no write for ${[...unanswered.keys()].join(", ")} after ${round} sends`,
        );
    }
    return answers;
  }

  /** The records of each topic and partition, in the order they came. */
  private async place(topicMessages: ProducerBatch["topicMessages"] = []): Promise<Map<string, Placed>> {
    const placed = new Map<string, Placed>();
    for (const { topic, messages } of topicMessages) {
      if (messages.length === 0) continue;
      const partitionMetadata = await this.metadata.partitionsOf(topic);
      for (const message of messages) {
        const partition = this.partitioner({ topic, partitionMetadata, message });
        const key = partitionKey(topic, partition);
        const group = placed.get(key) ?? { topic, messages: [] };
        group.messages.push({ ...message, partition });
        placed.set(key, group);
      }
    }
    return placed;
  }

  protected target(): Producer {
    return this.inner;
  }
}

/** Sends of one batch before it fails with PRODUCE_FAILED: each is a kafkajs send with its own retries. */
const MAX_ROUNDS = 5;

interface Placed {
  topic: string;
  messages: Message[];
}

const partitionKey = (topic: string, partition: number) => `${topic}/${partition}`;

function asTopicMessages(placed: Map<string, Placed>): TopicMessages[] {
  const byTopic = new Map<string, Message[]>();
  for (const { topic, messages } of placed.values())
    byTopic.set(topic, [...(byTopic.get(topic) ?? []), ...messages]);
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }));
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
