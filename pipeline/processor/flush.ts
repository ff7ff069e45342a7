import type { Message, Producer } from "kafkajs";
import { bigintReplacer } from "../../schemas/index.ts";
import type { UsageEventsSink } from "../../sinks/clickhouse/usage-events.ts";
import type { Limiter } from "../../sinks/mongo/limiter.ts";
import { writeProjections } from "../../sinks/mongo/projections.ts";
import { writeDocs } from "../../sinks/mongo/watermarked-store.ts";
import type { FlushPlan } from "./partition-worker.ts";

export interface FlushTargets {
  producer: Producer;
  usageEvents: UsageEventsSink;
  mongoLimiter: Limiter;
  topics: { deadLetter: string; events: string; state: string };
}

/** Brokers refuse a request over message.max.bytes (1 MiB by default): send at most this much at once. */
const MAX_SEND_BYTES = 768 * 1024;

/** Splits the outputs into sends under MAX_SEND_BYTES; a single larger message (a big dead letter) goes alone. */
function byteChunks(
  topicMessages: readonly { topic: string; messages: Message[] }[],
): { topic: string; messages: Message[] }[][] {
  const chunks: { topic: string; messages: Message[] }[][] = [];
  let current: { topic: string; messages: Message[] }[] = [];
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

/**
 * Makes one batch's effects durable. The order is the exactly-once argument, so it is fixed:
 *  1. Kafka outputs (dead letters, budget events, latest budget state): at least once; events carry a
 *     deterministic id header and the state topic is compacted, so a repeat is harmless.
 *  2. ClickHouse rows: once per offset (partition watermark + deduplication token); session summaries
 *     (a replay re-inserts them identically and ReplacingMergeTree + FINAL collapses them).
 *  3. Revenue ledgers: compare-and-set on their own watermark, written BEFORE the accounts, so that any
 *     record an account document does not yet hold is re-applied and re-counted only where missing.
 *  4. Projections (pause states, sessions, chat summaries, apps, workflows): absolute values, upserted.
 *  5. Account documents: compare-and-set on their watermark. After this the batch is applied.
 *  6. (the caller) commit offsets: a crash before it only causes re-delivery, which 2-5 skip.
 * Every step may be retried as a whole: each is idempotent for the same plan.
 */
/** Milliseconds spent in each step of one flush: where the time goes when the processor is slow. */
export interface FlushTimings {
  kafka: number;
  clickhouse: number;
  ledgers: number;
  projections: number;
  accounts: number;
}

export async function flush(
  plan: FlushPlan,
  targets: FlushTargets,
  /** Throws once the batch's partition may belong to another member; called between steps. */
  checkpoint: () => void,
): Promise<FlushTimings> {
  let mark = performance.now();
  const lap = (): number => {
    const now = performance.now();
    const spent = now - mark;
    mark = now;
    return Math.round(spent);
  };
  const topicMessages: { topic: string; messages: Message[] }[] = [];
  if (plan.deadLetters.length > 0) {
    topicMessages.push({
      topic: targets.topics.deadLetter,
      messages: plan.deadLetters.map((letter) => ({ key: letter.key, value: json(letter) })),
    });
  }
  if (plan.budgetEvents.length > 0) {
    topicMessages.push({
      topic: targets.topics.events,
      messages: plan.budgetEvents.map((event) => ({
        key: "chat_id" in event ? event.chat_id : event.account_key,
        value: json(event),
        headers: { "agentmeter-event-id": `${event.record_id}:${event.event}` },
      })),
    });
  }
  if (plan.budgetStates.length > 0) {
    topicMessages.push({
      topic: targets.topics.state,
      messages: plan.budgetStates.map((state) => ({ key: state.account_key, value: json(state) })),
    });
  }
  for (const chunk of byteChunks(topicMessages))
    await targets.producer.sendBatch({ topicMessages: chunk, acks: -1 });
  checkpoint();
  const kafka = lap();

  if (plan.usage.length > 0) await targets.usageEvents.append(plan.topic, plan.partition, plan.usage);
  await targets.usageEvents.appendSessionSummaries(plan.topic, plan.partition, plan.sessionSummaries);
  checkpoint();
  const clickhouse = lap();

  const wm = { topic: plan.topic, partition: plan.partition };
  if (plan.ledgerWrites.length > 0) await writeDocs(plan.ledgerWrites, wm, targets.mongoLimiter);
  const ledgers = lap();
  if (plan.projections.length > 0) await writeProjections(plan.projections, targets.mongoLimiter);
  checkpoint();
  const projections = lap();
  if (plan.accountWrites.length > 0) await writeDocs(plan.accountWrites, wm, targets.mongoLimiter);
  return { kafka, clickhouse, ledgers, projections, accounts: lap() };
}
