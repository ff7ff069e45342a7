import { OPERATOR_SECRET_MIN_BYTES } from "../pipeline/auth/signature.ts";
import { type Config, loadConfigWith, loadFlag } from "../pipeline/config.ts";
import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import {
  type AccountState,
  type BillingConfig,
  chatBudgetOf,
  freshBudgetState,
} from "../pipeline/core/index.ts";
import { AgentmeterError, isAgentmeterError } from "../pipeline/errors.ts";
import { createLogger, type Logger } from "../pipeline/log.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";
import { accountKeyOf, type BudgetState, type InputRecord } from "../schemas/index.ts";
import type { MeterBackend } from "./backend.ts";
import {
  DEFAULT_HOLD_TIMEOUT_MS,
  grantOf,
  type HoldGrant,
  type HoldRelease,
  type HoldRequest,
  holdRecordInput,
  runHeld,
  type SettleUsage,
} from "./holds.ts";
import { MockBackend } from "./mock-backend.ts";
import type { MockLedger } from "./mock-ledger.ts";
import type { BatchingOptions } from "./producer.ts";
import { uuidv7 } from "./record-id.ts";
import type {
  AccountIds,
  BudgetStatus,
  Correction,
  Refund,
  SentRecord,
  SessionClient,
  TopUp,
} from "./session-client.ts";
import {
  type AppSessionIds,
  type PlatformSessionIds,
  PlatformTokenManager,
  TokenManager,
} from "./token-manager.ts";
import { type PreparedRecord, prepareRecord, type RecordInput } from "./validate.ts";

export type { AccountIds, BudgetStatus, Correction, Refund, SentRecord, TopUp } from "./session-client.ts";

export interface AgentmeterOptions {
  /**
   * Overrides of the environment configuration (pipeline/config.ts): brokers, topics, database names.
   * Each is checked as the variable it replaces (CONFIG_INVALID naming it); undefined means its default.
   */
  config?: Partial<Config>;
  /** Where configuration is read from; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** In-process billing core, no server (default: AGENTMETER_MOCK, 1/true or 0/false). */
  mock?: boolean;
  /** canContinue reads MongoDB instead of the local view (default: AGENTMETER_STRICT, 1/true or 0/false). */
  strict?: boolean;
  /** Billing rules for local cost figures and mock mode; default AGENTMETER_BILLING_CONFIG or the defaults. */
  billing?: BillingConfig;
  batching?: Partial<BatchingOptions>;
  logger?: Logger;
  /** How long connect() waits for the budget view to read the state topic (default 30 s). */
  viewReadyTimeoutMs?: number;
  /**
   * The operator secret (default AGENTMETER_OPERATOR_SECRET): credit records sent through this client
   * are signed with it. Only the operator's tooling has it; an agent runtime is given none, and its
   * credit records are then refused by a processor that requires signatures (docs/security.md).
   * Kafka TLS and SASL come from the configuration: KAFKA_SSL, KAFKA_SSL_CA_FILE, KAFKA_SASL_* (or
   * `config`), as for the processor.
   */
  operatorSecret?: string;
}

/**
 * One connection of an agent runtime to agentmeter: a backend that records are sent through and
 * budgets are read from (the running pipeline, or the billing core in process in mock mode), and the
 * session managers on top. Create one per process with `Agentmeter.connect()` and share it.
 */
export class Agentmeter implements SessionClient {
  private constructor(
    readonly config: Config,
    readonly billing: BillingConfig,
    readonly mode: "kafka" | "mock",
    readonly budgetMode: "view" | "strict" | "mock",
    readonly logger: Logger,
    private readonly backend: MeterBackend,
    /** The in-process ledger of mock mode (its outputs, accounts, averages); undefined otherwise. */
    readonly mock: MockLedger | undefined,
  ) {}

  static async connect(options: AgentmeterOptions = {}): Promise<Agentmeter> {
    const env = options.env ?? process.env;
    // Overrides are checked as the variables they replace: "64k" or -1 would otherwise reach the size check.
    const config = loadConfigWith(env, options.config ?? {});
    const logger = options.logger ?? createLogger(config.LOG_LEVEL, "agentmeter-sdk");
    const operatorSecret = options.operatorSecret ?? config.AGENTMETER_OPERATOR_SECRET;
    if (
      operatorSecret !== undefined &&
      Buffer.byteLength(operatorSecret, "utf8") < OPERATOR_SECRET_MIN_BYTES
    ) {
      throw new AgentmeterError(
        "CONFIG_INVALID",
        `operatorSecret must be at least ${OPERATOR_SECRET_MIN_BYTES} bytes (e.g. openssl rand -hex 32)`,
      );
    }
    const billing = options.billing ?? loadBillingConfig(config);
    // Both read before either is used: a bad switch fails here, not after a Kafka connection timed out.
    const mock = options.mock ?? loadFlag("AGENTMETER_MOCK", env);
    const strict = options.strict ?? loadFlag("AGENTMETER_STRICT", env);
    if (mock) {
      const backend = new MockBackend(billing);
      return new Agentmeter(config, billing, "mock", "mock", logger, backend, backend.ledger);
    }
    // Loaded here, not imported above: the Kafka backend brings the Kafka client and the stores' drivers,
    // which an import of the package (or mock mode) must not load.
    const { KafkaBackend } = await import("./kafka-backend.ts");
    const backend = await KafkaBackend.connect({
      config,
      logger,
      strict,
      batching: options.batching,
      viewReadyTimeoutMs: options.viewReadyTimeoutMs,
      operatorSecret,
    });
    return new Agentmeter(config, billing, "kafka", strict ? "strict" : "view", logger, backend, undefined);
  }

  /** A manager for one end user's chat in an app (Level 2). */
  tokenManager(ids: AppSessionIds): TokenManager {
    return new TokenManager(this, ids);
  }

  /** A manager for one creator's platform session (Level 1). */
  platformTokenManager(ids: PlatformSessionIds): PlatformTokenManager {
    return new PlatformTokenManager(this, ids);
  }

  /** Fills `record_id`, validates and serializes under this connection's size limit. */
  prepare(input: RecordInput): PreparedRecord {
    return prepareRecord(input, this.config.AGENTMETER_MAX_RECORD_BYTES);
  }

  /** Validates, fills `record_id`, and sends; resolves once the broker acknowledged it (mock: once applied). */
  async send(input: RecordInput): Promise<SentRecord> {
    // A bad record rejects the returned promise, as a failed send does.
    return this.sendPrepared(this.prepare(input));
  }

  /**
   * Sends a record prepare() made, as it is. A failed send (PRODUCE_FAILED: the record may or may not be
   * on the topic) names the record in its details, `record_id` and `record`: `send(error.details.record)`
   * resends it with the same id, which the billing core counts once whether or not the first landed.
   */
  async sendPrepared(prepared: PreparedRecord): Promise<SentRecord> {
    try {
      await this.backend.send(prepared);
    } catch (error) {
      throw isAgentmeterError(error, "PRODUCE_FAILED") ? failedSendOf(error, prepared.record) : error;
    }
    return { record_id: prepared.record.record_id, record: prepared.record };
  }

  /**
   * Sends bytes as they are, unvalidated and unsigned (headers as given): for the simulator's
   * deliberately malformed records and for tests of the dead-letter path. Mock mode has no topic and
   * refuses.
   */
  sendRaw(key: string, value: string, headers?: Record<string, string>): Promise<void> {
    return this.backend.sendRaw(key, value, headers);
  }

  /** A credit record: bought tokens (`top_up`, the default), free tokens (`grant`), or a new allowance. */
  topUp(topUp: TopUp): Promise<SentRecord> {
    const {
      kind,
      tokens,
      amount_micros,
      priority,
      effective_at,
      expires_at,
      record_id,
      occurred_at,
      ...ids
    } = topUp;
    return this.send({
      type: "credit",
      kind: kind ?? "top_up",
      ...ids,
      tokens,
      ...(amount_micros === undefined ? {} : { amount_micros }),
      ...(priority === undefined ? {} : { priority }),
      ...(effective_at === undefined ? {} : { effective_at }),
      ...(expires_at === undefined ? {} : { expires_at }),
      ...(record_id === undefined ? {} : { record_id }),
      occurred_at: occurred_at ?? new Date().toISOString(),
    });
  }

  /** Cancels one usage record of the account (a `void` record): its tokens come back, its billing is reversed. */
  voidUsage(correction: Correction): Promise<SentRecord> {
    const { target_record_id, record_id, occurred_at, ...ids } = correction;
    return this.send({
      type: "void",
      ...ids,
      target_record_id,
      ...(record_id === undefined ? {} : { record_id }),
      occurred_at: occurred_at ?? new Date().toISOString(),
    });
  }

  /** Returns money billed for one usage record (a `refund` record); both shares are reversed pro rata. */
  refund(refund: Refund): Promise<SentRecord> {
    const { target_record_id, amount_micros, record_id, occurred_at, ...ids } = refund;
    return this.send({
      type: "refund",
      ...ids,
      target_record_id,
      amount_micros,
      ...(record_id === undefined ? {} : { record_id }),
      occurred_at: occurred_at ?? new Date().toISOString(),
    });
  }

  /**
   * Reserves tokens for one agent turn: sends a hold record and resolves with the decision of the
   * account's writer (granted, or denied with the reason and what is available). In mock mode the core
   * decides in process; a Kafka connection waits for the processor's decision on the holds topic
   * (AGENTMETER_HOLDS_TOPIC). A decision that does not arrive in time is HOLD_TIMEOUT, never a grant.
   */
  async reserve(request: HoldRequest): Promise<HoldGrant> {
    const prepared = this.prepare(holdRecordInput(request, request.hold_id ?? uuidv7()));
    const decision = await this.backend.reserve(prepared, request.timeout_ms ?? DEFAULT_HOLD_TIMEOUT_MS);
    return grantOf(decision);
  }

  /** Gives an open hold back unused (a `release` record): its tokens are available again. */
  release(release: HoldRelease): Promise<SentRecord> {
    const { hold_id, record_id, occurred_at, ...ids } = release;
    return this.send({
      type: "release",
      ...ids,
      hold_id,
      ...(record_id === undefined ? {} : { record_id }),
      occurred_at: occurred_at ?? new Date().toISOString(),
    });
  }

  /**
   * Settles a hold with the usage the turn really had: a usage record naming the hold. The usage is
   * billed as any usage is (never the estimate) and the rest of the hold is released.
   */
  settle(holdId: string, usage: SettleUsage): Promise<SentRecord> {
    return this.send({ type: "usage", ...usage, hold_id: holdId });
  }

  /**
   * reserve, run `turn`, settle with the usage it returns; if `turn` throws, release and rethrow. Not
   * granted: HOLD_DENIED (with the reason and what is available in the error's details) and `turn`
   * does not run.
   */
  withHold(
    request: HoldRequest,
    turn: (hold: HoldGrant) => Promise<SettleUsage>,
  ): Promise<{ hold: HoldGrant; settled: SentRecord }> {
    const ids = {
      level: request.level,
      enterprise_id: request.enterprise_id,
      mozaiks_user_id: request.mozaiks_user_id,
      ...(request.platform_user_id === undefined ? {} : { platform_user_id: request.platform_user_id }),
    };
    return runHeld(
      () => this.reserve(request),
      turn,
      (hold, usage) => this.settle(hold.hold_id, usage),
      (hold) => this.release({ ...ids, hold_id: hold.hold_id }),
      (record) => this.send(record as RecordInput),
    );
  }

  /**
   * Can the account continue: from the local view (a Map lookup), MongoDB in strict mode, or the mock
   * ledger. With `chatId`, also that chat's pause state.
   */
  async budget(ids: AccountIds, chatId?: string): Promise<BudgetStatus> {
    const { state: known, staleness } = await this.backend.readBudget(ids);
    // An account no record has reached yet starts with its level's allowance.
    const state = known ?? freshBudgetState(ids, this.billing);
    const chat = chatId === undefined ? null : chatBudgetOf(state, chatId);
    return {
      account_key: state.account_key,
      can_continue: state.can_continue,
      pause_reason: state.pause_reason ?? chat?.pause_reason ?? null,
      chat,
      available_tokens: state.available_tokens,
      state,
      source: this.backend.budgetSource,
      staleness,
    };
  }

  /** Waits until the view shows a state of the account that passes `test` (mock and strict: checks once). */
  async waitForBudget(
    ids: AccountIds,
    test: (state: BudgetState) => boolean,
    timeoutMs = 30_000,
  ): Promise<BudgetState> {
    const followed = this.backend.follow(accountKeyOf(ids), test, timeoutMs);
    if (followed !== undefined) return followed;
    const status = await this.budget(ids);
    if (!test(status.state)) {
      throw new AgentmeterError("VIEW_NOT_READY", `the budget of ${status.account_key} is not as awaited`);
    }
    return status.state;
  }

  /** The account's full document (balances, money, open chats): MongoDB, or the mock ledger. */
  account(ids: AccountIds): Promise<AccountState | null> {
    return this.backend.account(ids);
  }

  /** The app's document in MozaiksPlatform.Enterprises (first and last use, creator); mock: null. */
  enterprise(enterpriseId: string): Promise<Record<string, unknown> | null> {
    return this.backend.enterprise(enterpriseId);
  }

  /** A workflow's averages over its finished sessions (ClickHouse `workflow_averages`; mock: the ledger's). */
  workflowAverages(workflowName: string, enterpriseId: string): Promise<WorkflowAverages | null> {
    return this.backend.workflowAverages(workflowName, enterpriseId);
  }

  /** Records sent and acknowledged, and states the view has read (for progress lines and tests). */
  stats(): { acked: number; viewStates: number; viewCaughtUp: boolean } {
    return this.backend.stats();
  }

  /** Sends everything accepted so far and waits for the acknowledgements. */
  flush(): Promise<void> {
    return this.backend.flush();
  }

  /** Flushes (nothing accepted is lost), then closes every client. Further sends fail with SDK_CLOSED. */
  close(): Promise<void> {
    return this.backend.close();
  }
}

/**
 * One failed send's error, naming its record: the producer fails a whole batch with one error, and a
 * caller must know which id to resend (a new id would bill the turn twice if the first did land).
 */
function failedSendOf(error: AgentmeterError, record: InputRecord): AgentmeterError {
  return new AgentmeterError("PRODUCE_FAILED", `record ${record.record_id}: ${error.message}`, {
    cause: error.cause ?? error,
    details: { ...error.details, record_id: record.record_id, record },
  });
}
