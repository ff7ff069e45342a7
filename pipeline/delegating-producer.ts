import type { Producer, ProducerBatch, ProducerRecord, RecordMetadata } from "kafkajs";

/**
 * What the producer wrappers (renewing-producer.ts, acknowledged-send-producer.ts) pass through unchanged
 * to the kafkajs producer they wrap; each wrapper says which one that is now (`target`) and writes the
 * sending and the connection itself.
 */
export abstract class DelegatingProducer implements Producer {
  protected abstract target(): Producer;

  abstract connect(): Promise<void>;
  abstract disconnect(): Promise<void>;
  abstract send(record: ProducerRecord): Promise<RecordMetadata[]>;
  abstract sendBatch(batch: ProducerBatch): Promise<RecordMetadata[]>;

  isIdempotent(): boolean {
    return this.target().isIdempotent();
  }

  get events(): Producer["events"] {
    return this.target().events;
  }

  readonly on: Producer["on"] = ((eventName: never, listener: never) =>
    this.target().on(eventName, listener)) as Producer["on"];

  transaction(): ReturnType<Producer["transaction"]> {
    return this.target().transaction();
  }

  logger(): ReturnType<Producer["logger"]> {
    return this.target().logger();
  }
}
