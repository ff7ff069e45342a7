import type { Message } from "kafkajs";

export type TopicMessages = { topic: string; messages: Message[] };

interface Waiting<In> {
  submitted: In;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export interface GroupedSendsOptions<In, Out> {
  /** The submissions waiting for the next send, in submission order, as that one send. */
  merge: (all: readonly In[]) => Out;
  /**
   * After a failed send nothing more is sent: every later submission rejects with the same error.
   * Without it a failed send fails only the submissions in it, and the next group is still sent.
   */
  poison?: boolean;
  /** What a submission waiting at close, or made after it, rejects with. */
  closedError?: () => unknown;
}

/**
 * Submissions sent in the order they were made, one send in flight at a time; everything submitted while
 * a send is out goes together as the next one (`merge`). So however small and frequent the submissions,
 * the sends keep pace with the round trips instead of queueing behind each other: an idle sender sends at
 * once, a busy one sends fewer, larger requests. Each submission resolves once the send it went in
 * succeeded, and rejects with the error of the send that failed it (or refused it, see `poison`).
 */
export class GroupedSends<In, Out = In> {
  private waiting: Waiting<In>[] = [];
  private inFlight: Promise<void> | undefined;
  private failure: unknown;
  private closed = false;

  constructor(
    private readonly send: (merged: Out) => Promise<void>,
    private readonly options: GroupedSendsOptions<In, Out>,
  ) {}

  /** Resolves once this submission and every one made before it are sent. */
  submit(submitted: In): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ submitted, resolve, reject });
      this.next();
    });
  }

  /** Sends nothing more; resolves once the send in flight has settled. */
  async close(): Promise<void> {
    this.closed = true;
    this.next();
    while (this.inFlight !== undefined) await this.inFlight;
  }

  private next(): void {
    if (this.inFlight !== undefined || this.waiting.length === 0) return;
    const group = this.waiting;
    this.waiting = [];
    if (this.closed) this.failure ??= (this.options.closedError ?? closedError)();
    if (this.failure !== undefined) {
      for (const waiting of group) waiting.reject(this.failure);
      return;
    }
    this.inFlight = this.send(this.options.merge(group.map((waiting) => waiting.submitted)))
      .then(
        () => {
          for (const waiting of group) waiting.resolve();
        },
        (error: unknown) => {
          if (this.options.poison === true) this.failure = error;
          for (const waiting of group) waiting.reject(error);
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        this.next();
      });
  }
}

const closedError = () => new Error("grouped sends closed");

/**
 * Group commit for the processor's outputs. The partitions of a fetch are planned side by side and each
 * publishes its decisions; an idempotent producer's requests to a broker wait for each other, so six
 * publishes were six round trips one after another, the last batch's decisions waiting for all of them.
 * Here one send is in flight at a time and everything submitted meanwhile goes out together as the next:
 * an idle processor sends at once, a busy one sends fewer, larger requests. Sends follow submission
 * order, so a partition's outputs keep their order across batches. A failed send fails every submission
 * in it; each is retried by its own batch (outputs are at least once, and idempotent to repeat).
 */
export class TopicSends extends GroupedSends<readonly TopicMessages[], TopicMessages[]> {
  constructor(send: (topicMessages: TopicMessages[]) => Promise<void>) {
    super(send, { merge: (all) => byTopic(all.flat()) });
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
