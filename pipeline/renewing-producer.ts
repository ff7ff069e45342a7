import type { Producer, ProducerBatch, ProducerRecord, RecordMetadata } from "kafkajs";
import { DelegatingProducer } from "./delegating-producer.ts";

/**
 * Broker answers after which an idempotent producer's sequence numbers no longer match what the broker
 * holds for its producer id (a leader lost to a broker crash mid-request, producer state expired). kafkajs
 * keeps the producer id and sequences, so every later send fails the same way until the process restarts
 * (kafkajs issue 598): the only way out is a producer with a new id.
 */
const PRODUCER_STATE_LOST = new Set([
  "OUT_OF_ORDER_SEQUENCE_NUMBER",
  "UNKNOWN_PRODUCER_ID",
  "INVALID_PRODUCER_EPOCH",
  "INVALID_PRODUCER_ID_MAPPING",
]);

/** Whether `error` (or an error it wraps) says the broker lost this producer's idempotence state. */
export function lostProducerState(error: unknown): boolean {
  for (let seen = error, depth = 0; seen instanceof Error && depth < 5; depth++) {
    const type = (seen as { type?: unknown }).type;
    if (typeof type === "string" && PRODUCER_STATE_LOST.has(type)) return true;
    seen = (seen as { cause?: unknown }).cause ?? (seen as { originalError?: unknown }).originalError;
  }
  return false;
}

/**
 * A producer that replaces its kafkajs producer (a new producer id, sequences from zero) when the
 * broker answers that it lost the producer's state. The failing send still fails: the caller retries it
 * as it retries any send, on the new producer. A record that reached the log before the failure may be
 * written twice; records carry ids (input) and event ids (outputs) for that, as after any crash.
 * Instrumentation listeners (`on`) are not carried over to a replacement.
 */
export class RenewingProducer extends DelegatingProducer {
  private current: Producer;
  /** The current producer was made after a failure and has not connected yet. */
  private needsConnect = false;
  private connecting: Promise<void> | undefined;
  private closed = false;
  /** Sends in flight per producer: a replaced one is closed only when its last send settles. */
  private readonly inFlight = new Map<Producer, number>();
  /** Replaced producers not closed yet, and the closings under way. */
  private readonly retired = new Set<Producer>();
  private readonly closings = new Set<Promise<void>>();

  constructor(
    private readonly make: () => Producer,
    private readonly onRenew: (error: unknown) => void = () => undefined,
  ) {
    super();
    this.current = make();
  }

  async connect(): Promise<void> {
    this.closed = false;
    await this.current.connect();
  }

  async disconnect(): Promise<void> {
    this.closed = true;
    await this.connecting?.catch(() => undefined);
    // A replaced producer still retrying a send reconnects on its own; closed here at the latest.
    for (const producer of this.retired) this.close(producer);
    await Promise.allSettled(this.closings);
    await this.current.disconnect();
  }

  private close(producer: Producer): void {
    this.retired.delete(producer);
    const closing = producer.disconnect().catch(() => undefined);
    this.closings.add(closing);
    void closing.finally(() => this.closings.delete(closing));
  }

  send(record: ProducerRecord): Promise<RecordMetadata[]> {
    return this.guard((producer) => producer.send(record));
  }

  sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]> {
    return this.guard((producer) => producer.sendBatch(batch));
  }

  protected target(): Producer {
    return this.current;
  }

  /**
   * Sends at once on the current producer, as kafkajs alone would (no extra turn of the event loop
   * before the send, so a send and a disconnect race exactly as they do without this wrapper); only a
   * producer renewed after a failure connects first.
   */
  private guard<T>(send: (producer: Producer) => Promise<T>): Promise<T> {
    if (!this.needsConnect) return this.attempt(this.current, send);
    const producer = this.current;
    this.connecting ??= producer
      .connect()
      .then(() => {
        if (this.current === producer) this.needsConnect = false;
      })
      .finally(() => {
        this.connecting = undefined;
      });
    return this.connecting.then(() => this.attempt(producer, send));
  }

  private async attempt<T>(producer: Producer, send: (producer: Producer) => Promise<T>): Promise<T> {
    this.inFlight.set(producer, (this.inFlight.get(producer) ?? 0) + 1);
    try {
      return await send(producer);
    } catch (error) {
      if (!this.closed && producer === this.current && lostProducerState(error)) {
        this.current = this.make();
        this.needsConnect = true;
        this.onRenew(error);
        this.retired.add(producer);
      }
      throw error;
    } finally {
      const left = (this.inFlight.get(producer) ?? 1) - 1;
      if (left > 0) this.inFlight.set(producer, left);
      else {
        this.inFlight.delete(producer);
        // Closed once nothing is in flight on it: closing it under a retrying send would be undone.
        if (this.retired.has(producer)) this.close(producer);
      }
    }
  }
}
