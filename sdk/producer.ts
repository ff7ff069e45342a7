import type { IHeaders, Message, Producer } from "kafkajs";
import { SIGNATURE_HEADER, signRecord } from "../pipeline/auth/signature.ts";
import { AgentmeterError } from "../pipeline/errors.ts";
import { isOperatorRecord } from "../schemas/input-record.ts";

export interface BatchingOptions {
  /** How long a send waits for company before its batch goes out (ms). */
  lingerMs: number;
  /** A batch goes out at once when it holds this many records ... */
  maxBatchRecords: number;
  /** ... or this many bytes. Kept well under the broker's 1 MB per partition batch. */
  maxBatchBytes: number;
}

export const DEFAULT_BATCHING: BatchingOptions = {
  lingerMs: 5,
  maxBatchRecords: 2_000,
  maxBatchBytes: 512 * 1024,
};

interface Pending {
  message: Message;
  bytes: number;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * The headers of one record: the operator signature when the record must carry one and the secret is
 * given (the operator's tooling), none otherwise. `value` is signed exactly as it goes on the topic.
 */
export function signatureHeaders(
  operatorSecret: string | undefined,
  record: { type: string },
  value: string,
): IHeaders | undefined {
  if (operatorSecret === undefined || !isOperatorRecord(record)) return undefined;
  return { [SIGNATURE_HEADER]: signRecord(operatorSecret, value) };
}

/**
 * Collects sends into batches: one kafkajs `send` per batch, one batch in flight (the idempotent
 * producer allows one request in flight per broker, and one at a time keeps per-partition order). While
 * a batch is in flight the next one fills up, so under load batches grow by themselves and an idle
 * caller waits at most `lingerMs`. Every `enqueue` resolves only after the broker acknowledged its
 * batch with acks=all, or rejects with PRODUCE_FAILED; nothing is acknowledged that was not written.
 */
export class BatchingProducer {
  private queue: Pending[] = [];
  private queuedBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private inflight: Promise<void> | undefined;
  private closed = false;
  /** Records acknowledged by the broker since start. */
  acked = 0;

  constructor(
    private readonly producer: Producer,
    private readonly topic: string,
    private readonly options: BatchingOptions = DEFAULT_BATCHING,
  ) {}

  enqueue(key: string, value: string, headers?: IHeaders): Promise<void> {
    if (this.closed) return Promise.reject(new AgentmeterError("SDK_CLOSED", "the producer is closed"));
    return new Promise<void>((resolve, reject) => {
      let bytes = key.length + value.length;
      for (const [name, header] of Object.entries(headers ?? {}))
        bytes += name.length + String(header).length;
      const message: Message = headers === undefined ? { key, value } : { key, value, headers };
      this.queue.push({ message, bytes, resolve, reject });
      this.queuedBytes += bytes;
      if (
        this.queue.length >= this.options.maxBatchRecords ||
        this.queuedBytes >= this.options.maxBatchBytes
      ) {
        this.kick();
      } else if (this.timer === undefined && this.inflight === undefined) {
        this.timer = setTimeout(() => this.kick(), this.options.lingerMs);
      }
    });
  }

  /** Sends everything queued and waits for every acknowledgement (or failure). */
  async flush(): Promise<void> {
    while (this.queue.length > 0 || this.inflight !== undefined) {
      this.kick();
      await this.inflight?.catch(() => undefined);
    }
  }

  /** Refuses new sends, flushes what was accepted, then disconnects. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flush();
    await this.producer.disconnect();
  }

  private kick(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.inflight !== undefined || this.queue.length === 0) return;
    this.inflight = this.drain().finally(() => {
      this.inflight = undefined;
      // Sends that arrived after the drain loop's last look.
      if (this.queue.length > 0) this.kick();
    });
  }

  private take(): Pending[] {
    let bytes = 0;
    let count = 0;
    while (
      count < this.queue.length &&
      count < this.options.maxBatchRecords &&
      (count === 0 || bytes + this.queue[count]!.bytes <= this.options.maxBatchBytes)
    ) {
      bytes += this.queue[count]!.bytes;
      count++;
    }
    this.queuedBytes -= bytes;
    return this.queue.splice(0, count);
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.take();
      try {
        await this.producer.send({
          topic: this.topic,
          acks: -1,
          messages: batch.map((item) => item.message),
        });
        this.acked += batch.length;
        for (const item of batch) item.resolve();
      } catch (error) {
        // kafkajs has already retried; the batch may or may not be on the topic. A caller that resends
        // the same records (same record_id) is safe: the billing core ignores duplicates.
        const failure = new AgentmeterError(
          "PRODUCE_FAILED",
          `${batch.length} records could not be written to ${this.topic}: ${(error as Error).message}`,
          { cause: error },
        );
        for (const item of batch) item.reject(failure);
      }
    }
  }
}
