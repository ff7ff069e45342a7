/**
 * The backend of a connection to the running pipeline: records go to the input topic through the
 * batching producer; budgets come from the local view of the budget-state topic, or from MongoDB in
 * strict mode; account figures and workflow averages from the stores (agentmeter/admin).
 */

import type { Config } from "../pipeline/config.ts";
import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import type { AccountState } from "../pipeline/core/index.ts";
import { AgentmeterError } from "../pipeline/errors.ts";
import { createKafka, ensureTopics, idempotentProducer } from "../pipeline/kafka.ts";
import type { Logger } from "../pipeline/log.ts";
import { accountKeyOf, type BudgetState, type HoldDecision } from "../schemas/index.ts";
import { AgentmeterAdmin } from "./admin.ts";
import { type BudgetReading, currentReading, type MeterBackend } from "./backend.ts";
import { BudgetView } from "./budget-view.ts";
import { HoldReplies } from "./hold-replies.ts";
import { type BatchingOptions, BatchingProducer, DEFAULT_BATCHING, signatureHeaders } from "./producer.ts";
import type { AccountIds } from "./session-client.ts";
import type { PreparedRecord } from "./validate.ts";

export interface KafkaBackendOptions {
  config: Config;
  logger: Logger;
  /** Budgets from MongoDB on every call instead of the local view. */
  strict: boolean;
  batching?: Partial<BatchingOptions> | undefined;
  viewReadyTimeoutMs?: number | undefined;
  /** Signs the records that need the operator's signature (credits). */
  operatorSecret?: string | undefined;
}

export class KafkaBackend implements MeterBackend {
  readonly budgetSource: "view" | "mongo";

  private constructor(
    private readonly producer: BatchingProducer,
    private readonly view: BudgetView | undefined,
    private readonly stores: AgentmeterAdmin,
    private readonly operatorSecret: string | undefined,
    private readonly replies: HoldReplies,
  ) {
    this.budgetSource = view === undefined ? "mongo" : "view";
  }

  static async connect(options: KafkaBackendOptions): Promise<KafkaBackend> {
    const { config, logger } = options;
    const kafka = createKafka(config, logger);
    const admin = kafka.admin();
    await admin.connect();
    try {
      // Same topics and settings as the processor creates: a runtime may start first.
      await ensureTopics(admin, config);
    } finally {
      await admin.disconnect();
    }
    const raw = idempotentProducer(kafka, logger);
    await raw.connect();
    const producer = new BatchingProducer(raw, config.AGENTMETER_INPUT_TOPIC, {
      ...DEFAULT_BATCHING,
      ...options.batching,
    });
    let view: BudgetView | undefined;
    if (!options.strict) {
      view = new BudgetView(kafka, config.AGENTMETER_STATE_TOPIC, config.KAFKA_CLIENT_ID, logger);
      await view.start();
      await view.ready(options.viewReadyTimeoutMs ?? 30_000);
    }
    const replies = new HoldReplies(kafka, config.AGENTMETER_HOLDS_TOPIC, config.KAFKA_CLIENT_ID, logger);
    await replies.start();
    return new KafkaBackend(
      producer,
      view,
      new AgentmeterAdmin(config, logger),
      options.operatorSecret,
      replies,
    );
  }

  send(prepared: PreparedRecord): Promise<void> {
    const { record, value } = prepared;
    return this.producer.enqueue(
      accountKeyOf(record),
      value,
      signatureHeaders(this.operatorSecret, record, value),
    );
  }

  /**
   * Sends the hold record and waits for the processor's decision on the holds topic. The wait is
   * registered before the send, so a fast decision is never missed; a timeout is HOLD_TIMEOUT, never a
   * grant (the hold may still be decided: reserving again with the same hold_id tells).
   */
  async reserve(prepared: PreparedRecord, timeoutMs: number): Promise<HoldDecision> {
    const { record } = prepared;
    if (record.type !== "hold")
      throw new AgentmeterError("RECORD_INVALID", `reserve takes a hold record, got ${record.type}`);
    const accountKey = accountKeyOf(record);
    const decision = this.replies.wait(accountKey, record.record_id, record.hold_id, timeoutMs);
    try {
      await this.send(prepared);
    } catch (error) {
      this.replies.cancel(accountKey, record.record_id, error);
    }
    return decision;
  }

  sendRaw(key: string, value: string, headers?: Record<string, string>): Promise<void> {
    return this.producer.enqueue(key, value, headers);
  }

  async readBudget(ids: AccountIds): Promise<BudgetReading> {
    if (this.view !== undefined) return this.view.get(accountKeyOf(ids));
    return currentReading(await this.stores.budgetState(ids));
  }

  follow(
    accountKey: string,
    test: (state: BudgetState) => boolean,
    timeoutMs: number,
  ): Promise<BudgetState> | undefined {
    return this.view?.waitFor(accountKey, test, timeoutMs);
  }

  account(ids: AccountIds): Promise<AccountState | null> {
    return this.stores.account(ids);
  }

  enterprise(enterpriseId: string): Promise<Record<string, unknown> | null> {
    return this.stores.enterprise(enterpriseId);
  }

  workflowAverages(workflowName: string, enterpriseId: string): Promise<WorkflowAverages | null> {
    return this.stores.workflowAverages(workflowName, enterpriseId);
  }

  stats(): { acked: number; viewStates: number; viewCaughtUp: boolean } {
    return {
      acked: this.producer.acked,
      viewStates: this.view?.size ?? 0,
      viewCaughtUp: this.view?.isCaughtUp ?? true,
    };
  }

  flush(): Promise<void> {
    return this.producer.flush();
  }

  /** Flushes (nothing accepted is lost), then closes every client. */
  async close(): Promise<void> {
    await this.producer.close();
    await this.view?.stop();
    await this.replies.stop();
    await this.stores.close();
  }
}
