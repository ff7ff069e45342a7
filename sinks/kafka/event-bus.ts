/** The Kafka adapter of the processor's event bus (pipeline/processor/ports.ts). */
import type { Producer } from "kafkajs";
import type { Decisions, EventBus } from "../../pipeline/processor/ports.ts";
import { bigintReplacer, budgetEventIdOf, letterKey } from "../../schemas/index.ts";
import { type TopicMessages, TopicSends } from "./grouped-sends.ts";

/** Brokers refuse a request over message.max.bytes (1 MiB by default): send at most this much at once. */
const MAX_SEND_BYTES = 768 * 1024;

/** Splits the outputs into sends under MAX_SEND_BYTES; a single larger message (a big dead letter) goes alone. */
export function byteChunks(topicMessages: readonly TopicMessages[]): TopicMessages[][] {
  const chunks: TopicMessages[][] = [];
  let current: TopicMessages[] = [];
  let size = 0;
  for (const { topic, messages } of topicMessages) {
    for (const message of messages) {
      const bytes = String(message.value ?? "").length + String(message.key ?? "").length + 64;
      if (size > 0 && size + bytes > MAX_SEND_BYTES) {
        chunks.push(current);
        current = [];
        size = 0;
      }
      const last = current[current.length - 1];
      if (last !== undefined && last.topic === topic) last.messages.push(message);
      else current.push({ topic, messages: [message] });
      size += bytes;
    }
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

function json(value: unknown): string {
  return JSON.stringify(value, bigintReplacer);
}

export interface DecisionTopics {
  deadLetter: string;
  events: string;
  state: string;
  holds: string;
}

/**
 * Dead letters, budget events and latest budget states, acknowledged by every in-sync replica. At least
 * once: events carry a deterministic id header and the state topic is compacted, so a repeat is harmless.
 */
export class KafkaEventBus implements EventBus {
  private readonly sends: TopicSends;

  constructor(
    producer: Producer,
    private readonly topics: DecisionTopics,
  ) {
    this.sends = new TopicSends(async (topicMessages) => {
      for (const chunk of byteChunks(topicMessages))
        await producer.sendBatch({ topicMessages: chunk, acks: -1 });
    });
  }

  publish(decisions: Decisions): Promise<void> {
    const topicMessages = this.messages(decisions);
    if (topicMessages.length === 0) return Promise.resolve();
    return this.sends.submit(topicMessages);
  }

  private messages({ deadLetters, budgetEvents, budgetStates, holdDecisions }: Decisions): TopicMessages[] {
    const topicMessages: TopicMessages[] = [];
    if (deadLetters.length > 0) {
      topicMessages.push({
        topic: this.topics.deadLetter,
        messages: deadLetters.map((letter) => ({ key: letterKey(letter), value: json(letter) })),
      });
    }
    if (budgetEvents.length > 0) {
      topicMessages.push({
        topic: this.topics.events,
        messages: budgetEvents.map((event) => ({
          key: "chat_id" in event ? event.chat_id : event.account_key,
          value: json(event),
          headers: { "agentmeter-event-id": budgetEventIdOf(event) },
        })),
      });
    }
    if (budgetStates.length > 0) {
      topicMessages.push({
        topic: this.topics.state,
        messages: budgetStates.map((state) => ({ key: state.account_key, value: json(state) })),
      });
    }
    if (holdDecisions.length > 0) {
      topicMessages.push({
        topic: this.topics.holds,
        messages: holdDecisions.map((decision) => ({ key: decision.hold_id, value: json(decision) })),
      });
    }
    return topicMessages;
  }
}
