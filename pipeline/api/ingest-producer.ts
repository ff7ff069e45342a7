import { accountKeyOf } from "../../schemas/index.ts";
import { BatchingProducer, DEFAULT_BATCHING, signatureHeaders } from "../../sdk/producer.ts";
import type { PreparedRecord } from "../../sdk/validate.ts";
import type { Config } from "../config.ts";
import { createKafka, ensureTopics, idempotentProducer } from "../kafka.ts";
import type { Logger } from "../log.ts";

/**
 * The API's way onto the input topic: the SDK's batching producer (idempotent, acks from all in-sync
 * replicas, murmur2 keys), so a record the API answers `accepted` for is on the topic, and concurrent
 * requests share batches.
 */
export class IngestProducer {
  private constructor(
    private readonly producer: BatchingProducer,
    private readonly operatorSecret: string | undefined,
  ) {}

  static async connect(config: Config, logger: Logger): Promise<IngestProducer> {
    const kafka = createKafka(config, logger);
    const admin = kafka.admin();
    await admin.connect();
    try {
      // The processor creates the same topics; the API may start first.
      await ensureTopics(admin, config);
    } finally {
      await admin.disconnect();
    }
    const raw = idempotentProducer(kafka, logger);
    await raw.connect();
    return new IngestProducer(
      new BatchingProducer(raw, config.AGENTMETER_INPUT_TOPIC, DEFAULT_BATCHING),
      config.AGENTMETER_OPERATOR_SECRET,
    );
  }

  /** Resolves once the broker acknowledged the record (acks=all); rejects with PRODUCE_FAILED. */
  send({ record, value }: PreparedRecord): Promise<void> {
    return this.producer.enqueue(
      accountKeyOf(record),
      value,
      signatureHeaders(this.operatorSecret, record, value),
    );
  }

  get acked(): number {
    return this.producer.acked;
  }

  /** Waits for every record in flight, then disconnects. */
  close(): Promise<void> {
    return this.producer.close();
  }
}
