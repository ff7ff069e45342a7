import type { Message } from "kafkajs";

export type TopicMessages = { topic: string; messages: Message[] };

interface Waiting {
  topicMessages: readonly TopicMessages[];
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Group commit for the processor's outputs. The partitions of a fetch are planned side by side and each
 * publishes its decisions; an idempotent producer's requests to a broker wait for each other, so six
 * publishes were six round trips one after another, the last batch's decisions waiting for all of them.
 * Here one send is in flight at a time and everything submitted meanwhile goes out together as the next:
 * an idle processor sends at once, a busy one sends fewer, larger requests. Sends follow submission
 * order, so a partition's outputs keep their order across batches. A failed send fails every submission
 * in it; each is retried by its own batch (outputs are at least once, and idempotent to repeat).
 */
export class GroupedSends {
  private waiting: Waiting[] = [];
  private inflight = false;

  constructor(private readonly send: (topicMessages: TopicMessages[]) => Promise<void>) {}

  submit(topicMessages: readonly TopicMessages[]): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ topicMessages, resolve, reject });
      this.next();
    });
  }

  private next(): void {
    if (this.inflight || this.waiting.length === 0) return;
    const group = this.waiting;
    this.waiting = [];
    this.inflight = true;
    this.send(byTopic(group.flatMap((waiting) => waiting.topicMessages)))
      .then(
        () => {
          for (const waiting of group) waiting.resolve();
        },
        (error: unknown) => {
          for (const waiting of group) waiting.reject(error);
        },
      )
      .finally(() => {
        this.inflight = false;
        this.next();
      });
  }
}

/** One entry per topic, its messages in the order submitted (kafkajs keeps one entry per topic of a send). */
export function byTopic(topicMessages: readonly TopicMessages[]): TopicMessages[] {
  const merged = new Map<string, Message[]>();
  for (const { topic, messages } of topicMessages) {
    const into = merged.get(topic);
    if (into === undefined) merged.set(topic, [...messages]);
    else into.push(...messages);
  }
  return [...merged].map(([topic, messages]) => ({ topic, messages }));
}
