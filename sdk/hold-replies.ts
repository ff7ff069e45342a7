import type { Consumer, Kafka } from "kafkajs";
import { AgentmeterError } from "../pipeline/errors.ts";
import type { Logger } from "../pipeline/log.ts";
import { formatIssues } from "../schemas/decode.ts";
import { type HoldDecision, holdDecisionSchema } from "../schemas/index.ts";
import { uuidv7 } from "./record-id.ts";
import { endOffsets } from "./topic-offsets.ts";

interface Waiter {
  resolve: (decision: HoldDecision) => void;
  reject: (error: unknown) => void;
  timer: NodeJS.Timeout;
}

/**
 * Hears the processor's hold decisions on the holds topic and hands each to the reserve waiting for it
 * (by account and hold record id). Reading starts at the topic's end as it was when the connection
 * started, with a throwaway group: every decision for a hold sent after that is heard, none before.
 * A decision arriving twice (a processor re-applying a batch after a crash) is the same decision: the
 * first resolves the wait, the repeat finds nobody waiting.
 */
export class HoldReplies {
  private readonly waiting = new Map<string, Waiter>();
  private consumer: Consumer | undefined;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly groupPrefix: string,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    let ends: { partition: number; offset: string }[];
    try {
      ends = await endOffsets(admin, this.topic);
    } finally {
      await admin.disconnect();
    }
    this.consumer = this.kafka.consumer({
      groupId: `${this.groupPrefix}-holds-${uuidv7()}`,
      maxWaitTimeInMs: 50,
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachMessage: async ({ message }) => this.hear(message.value),
    });
    for (const { partition, offset } of ends) this.consumer.seek({ topic: this.topic, partition, offset });
  }

  /** Waits for the decision on the hold record `recordId` of `accountKey`; HOLD_TIMEOUT after `timeoutMs`. */
  wait(accountKey: string, recordId: string, holdId: string, timeoutMs: number): Promise<HoldDecision> {
    const key = waitKey(accountKey, recordId);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(key);
        reject(
          new AgentmeterError(
            "HOLD_TIMEOUT",
            `no decision on hold ${holdId} (record ${recordId}) within ${timeoutMs} ms: it may still be decided; retry reserve with the same hold_id to learn the outcome`,
          ),
        );
      }, timeoutMs);
      this.waiting.set(key, { resolve, reject, timer });
    });
  }

  /** Stops waiting for a hold whose record could not be sent. */
  cancel(accountKey: string, recordId: string, error: unknown): void {
    const key = waitKey(accountKey, recordId);
    const waiter = this.waiting.get(key);
    if (waiter === undefined) return;
    clearTimeout(waiter.timer);
    this.waiting.delete(key);
    waiter.reject(error);
  }

  async stop(): Promise<void> {
    for (const [key, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.reject(new AgentmeterError("HOLD_TIMEOUT", "connection closed before the hold was decided"));
      this.waiting.delete(key);
    }
    await this.consumer?.disconnect();
    this.consumer = undefined;
  }

  private hear(value: Buffer | null): void {
    if (value === null) return;
    let json: unknown;
    try {
      json = JSON.parse(value.toString("utf8"));
    } catch {
      this.logger.warn({ topic: this.topic }, "hold decision is not JSON; ignored");
      return;
    }
    // Every client reads every decision of the topic: most are other clients' holds. Only a decision
    // someone here waits for is validated in full.
    const ids = json as { account_key?: unknown; record_id?: unknown } | null;
    if (typeof ids?.account_key !== "string" || typeof ids.record_id !== "string") {
      this.logger.warn({ topic: this.topic }, "hold decision names no account_key and record_id; ignored");
      return;
    }
    const key = waitKey(ids.account_key, ids.record_id);
    const waiter = this.waiting.get(key);
    if (waiter === undefined) return;
    const parsed = holdDecisionSchema.safeParse(json);
    if (!parsed.success) {
      // The waiter keeps waiting: a decision it can trust may still come, else its timeout answers.
      this.logger.warn(
        { topic: this.topic, problem: formatIssues(parsed.error.issues) },
        "hold decision does not match the schema; ignored",
      );
      return;
    }
    clearTimeout(waiter.timer);
    this.waiting.delete(key);
    waiter.resolve(parsed.data);
  }
}

function waitKey(accountKey: string, recordId: string): string {
  return `${accountKey}\u0000${recordId}`;
}
