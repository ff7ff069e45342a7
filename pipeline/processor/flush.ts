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
 *  1. Outputs, side by side:
 *     - Kafka (dead letters, budget events, latest budget state): at least once; events carry a
 *       deterministic id header and the state topic is compacted, so a repeat is harmless;
 *     - ClickHouse rows: once per offset (partition watermark + deduplication token); session summaries
 *       (a replay re-inserts them identically and ReplacingMergeTree + FINAL collapses them).
 *  2. MongoDB read side, side by side:
 *     - revenue ledgers: compare-and-set on their own watermark, written BEFORE the accounts, so that
 *       any record an account document does not yet hold is re-applied and re-counted only where missing;
 *     - projections (pause states, sessions, chat summaries, apps, workflows): absolute values, upserted.
 *  3. Account documents: compare-and-set on their watermark. After this the batch is applied.
 *  4. (the caller) commit offsets: a crash before it only causes re-delivery, which 1-3 skip.
 * Every step may be retried as a whole: each is idempotent for the same plan. Steps that do not depend
 * on each other overlap, because a flush's latency is the sum of its round trips.
 */
/** Milliseconds spent in each part of one flush (parts of one step overlap): where the time goes. */
export interface FlushTimings {
  kafka: number;
  clickhouse: number;
  ledgers: number;
  projections: number;
  accounts: number;
}

/**
 * Runs side by side and waits for every one to settle before throwing the first failure, so that a
 * retried flush never overlaps a straggler of the failed try.
 */
async function settled(promises: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
}

function kafkaMessages(plan: FlushPlan, targets: FlushTargets): { topic: string; messages: Message[] }[] {
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
  return topicMessages;
}

export async function flush(
  plan: FlushPlan,
  targets: FlushTargets,
  /** Throws once the batch's partition may belong to another member; called between steps. */
  checkpoint: () => void,
): Promise<FlushTimings> {
  const timings: FlushTimings = { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
  const timed = async (part: keyof FlushTimings, action: () => Promise<unknown>): Promise<void> => {
    const started = performance.now();
    await action();
    timings[part] = Math.round(performance.now() - started);
  };
  const wm = { topic: plan.topic, partition: plan.partition };

  await settled([
    timed("kafka", async () => {
      for (const chunk of byteChunks(kafkaMessages(plan, targets)))
        await targets.producer.sendBatch({ topicMessages: chunk, acks: -1 });
    }),
    timed("clickhouse", () =>
      settled([
        targets.usageEvents.append(plan.topic, plan.partition, plan.usage),
        targets.usageEvents.appendSessionSummaries(plan.topic, plan.partition, plan.sessionSummaries),
      ]),
    ),
  ]);
  checkpoint();
  await settled([
    timed("ledgers", () => writeDocs(plan.ledgerWrites, wm, targets.mongoLimiter)),
    timed("projections", () => writeProjections(plan.projections, targets.mongoLimiter)),
  ]);
  checkpoint();
  await timed("accounts", () => writeDocs(plan.accountWrites, wm, targets.mongoLimiter));
  return timings;
}
