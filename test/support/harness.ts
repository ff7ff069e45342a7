/**
 * One integration test's pipeline: a namespace of its own (isolatedConfig), its topics created, an
 * admin client and a producer, processors in this process or as child processes, and the verdict on
 * the stores against the billing core (verify.ts). close() undoes everything it started.
 */
import type { Admin, Kafka, Producer } from "kafkajs";
import type { Difference } from "../../pipeline/audit/diff.ts";
import type { Config } from "../../pipeline/config.ts";
import type { BillingConfig } from "../../pipeline/core/index.ts";
import { ensureTopics } from "../../pipeline/kafka.ts";
import { createLogger } from "../../pipeline/log.ts";
import { Processor } from "../../pipeline/processor/processor.ts";
import { loadBillingConfig } from "../../pipeline/runtime/billing-config.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { expectedStores } from "./expected.ts";
import { configEnv, connectProducer, isolatedConfig, produceRecords, testKafka } from "./pipeline.ts";
import {
  groupLag,
  type ProcessorProcess,
  startProcessorProcess,
  stopProcess,
  waitCaughtUp,
} from "./processes.ts";
import { assertStoresMatch, storeDifferences } from "./verify.ts";

export interface PipelineOptions {
  /** Configuration variables over isolatedConfig's. */
  env?: Record<string, string>;
  /** The processor's billing configuration; default: what the configuration names (the defaults in tests). */
  billing?: BillingConfig;
}

export class TestPipeline {
  private producerInUse: Producer | undefined;
  private adminInUse: Admin | undefined;
  private readonly inProcess = new Set<Processor>();
  private readonly children = new Set<ProcessorProcess>();

  private constructor(
    readonly config: Config,
    readonly billing: BillingConfig,
  ) {}

  /** A pipeline in a namespace of its own, its topics created (so nothing produced before a processor starts lands in an auto-created topic). */
  static async create(options: PipelineOptions = {}): Promise<TestPipeline> {
    const config = await isolatedConfig(options.env);
    const pipeline = new TestPipeline(config, options.billing ?? loadBillingConfig(config));
    await ensureTopics(await pipeline.admin(), config);
    return pipeline;
  }

  get topic(): string {
    return this.config.AGENTMETER_INPUT_TOPIC;
  }

  get groupId(): string {
    return this.config.AGENTMETER_GROUP_ID;
  }

  /** A new client of this namespace's brokers (consumers of the output topics, admin calls of a test's own). */
  kafka(): Kafka {
    return testKafka(this.config);
  }

  /** The pipeline's admin client, connected on first use. */
  async admin(): Promise<Admin> {
    if (this.adminInUse === undefined) {
      const admin = this.kafka().admin();
      await admin.connect();
      this.adminInUse = admin;
    }
    return this.adminInUse;
  }

  /** Produces records keyed by account, as agent runtimes do (test/support/pipeline.ts produceRecords). */
  async produce(records: readonly InputRecordJson[]): Promise<void> {
    this.producerInUse ??= await connectProducer(this.kafka());
    await produceRecords(this.producerInUse, this.topic, records);
  }

  /** The pipeline's producer, connected on first use (for sends produce() does not cover). */
  async producer(): Promise<Producer> {
    this.producerInUse ??= await connectProducer(this.kafka());
    return this.producerInUse;
  }

  /**
   * Disconnects the admin client and the producer; the next call connects new ones. For tests that
   * restart the broker: clients made before a restart are not trusted after it.
   */
  async releaseClients(): Promise<void> {
    const [producer, admin] = [this.producerInUse, this.adminInUse];
    this.producerInUse = undefined;
    this.adminInUse = undefined;
    await producer?.disconnect().catch(() => undefined);
    await admin?.disconnect().catch(() => undefined);
  }

  /** Records on the input topic the group has not committed. */
  async lag(): Promise<bigint> {
    return groupLag(await this.admin(), this.groupId, this.topic);
  }

  /** Resolves once the group has committed everything on the input topic: every store holds every record. */
  async caughtUp(timeoutMs = 120_000): Promise<void> {
    await waitCaughtUp(await this.admin(), this.groupId, this.topic, timeoutMs);
  }

  /** A processor in this process, started; stopped by stopProcessor() or close(). */
  async startProcessor(logLevel = this.config.LOG_LEVEL): Promise<Processor> {
    const processor = new Processor(this.config, this.billing, createLogger(logLevel));
    this.inProcess.add(processor);
    await processor.start();
    return processor;
  }

  async stopProcessor(processor: Processor): Promise<void> {
    this.inProcess.delete(processor);
    await processor.stop();
  }

  /** Runs `body` with a processor started for it, and stops the processor whatever `body` does. */
  async withProcessor<T>(body: (processor: Processor) => Promise<T>): Promise<T> {
    const processor = await this.startProcessor();
    try {
      return await body(processor);
    } finally {
      await this.stopProcessor(processor);
    }
  }

  /**
   * A processor as an OS process (pipeline/processor/main.ts with this namespace's environment), so a
   * test can SIGKILL it like a crash would; its log goes to .agentmeter/test-logs/{name}-{client id}.log.
   * close() kills those still running.
   */
  spawnProcessor(name: string): ProcessorProcess {
    const child = startProcessorProcess(`${name}-${this.config.KAFKA_CLIENT_ID}`, configEnv(this.config));
    this.children.add(child);
    void child.exited.then(() => this.children.delete(child));
    return child;
  }

  /** The stores' differences from what the billing core computes from `records` (verify.ts). */
  async differences(records: readonly InputRecordJson[]): Promise<Difference[]> {
    return storeDifferences(this.config, expectedStores(records, this.billing));
  }

  /** Asserts the stores hold exactly what the billing core computes from `records` (verify.ts). */
  async assertStoresMatch(records: readonly InputRecordJson[]): Promise<void> {
    await assertStoresMatch(this.config, expectedStores(records, this.billing));
  }

  async close(): Promise<void> {
    await Promise.all([...this.children].map((child) => stopProcess(child, "SIGKILL")));
    for (const processor of this.inProcess) await processor.stop().catch(() => undefined);
    this.inProcess.clear();
    await this.releaseClients();
  }
}
