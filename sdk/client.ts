import type { Document, MongoClient } from "mongodb";
import { type Config, loadConfig } from "../pipeline/config.ts";
import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import { type AccountState, type BillingConfig, budgetStateOf } from "../pipeline/core/index.ts";
import { ownValue } from "../pipeline/core/own.ts";
import { AgentmeterError } from "../pipeline/errors.ts";
import { createKafka, DEFAULT_PARTITIONER, ensureTopics } from "../pipeline/kafka.ts";
import { createLogger, type Logger } from "../pipeline/log.ts";
import { loadBillingConfig } from "../pipeline/processor/main.ts";
import {
  accountKeyOf,
  type BudgetState,
  type InputRecord,
  type Level,
  SCHEMA_VERSION,
} from "../schemas/index.ts";
import { type ClickHouseClient, createClickHouse } from "../sinks/clickhouse/client.ts";
import { workflowAverages } from "../sinks/clickhouse/workflow-averages.ts";
import { createMongo } from "../sinks/mongo/client.ts";
import { COLLECTIONS, layoutNames, MongoLayout } from "../sinks/mongo/layout.ts";
import { readAccount } from "../sinks/mongo/read.ts";
import { BudgetView, type Staleness } from "./budget-view.ts";
import { MockLedger } from "./mock-ledger.ts";
import { type BatchingOptions, BatchingProducer, DEFAULT_BATCHING } from "./producer.ts";
import {
  type AppSessionIds,
  type PlatformSessionIds,
  PlatformTokenManager,
  TokenManager,
} from "./token-manager.ts";
import { prepareRecord, type RecordInput } from "./validate.ts";

export interface AgentmeterOptions {
  /** Overrides of the environment configuration (pipeline/config.ts): brokers, topics, database names. */
  config?: Partial<Config>;
  /** Where configuration is read from; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  /** In-process billing core, no server (default: AGENTMETER_MOCK=1). */
  mock?: boolean;
  /** canContinue reads MongoDB instead of the local view (default: AGENTMETER_STRICT=1). */
  strict?: boolean;
  /** Billing rules for local cost figures and mock mode; default AGENTMETER_BILLING_CONFIG or the defaults. */
  billing?: BillingConfig;
  batching?: Partial<BatchingOptions>;
  logger?: Logger;
  /** How long connect() waits for the budget view to read the state topic (default 30 s). */
  viewReadyTimeoutMs?: number;
}

/** The ids that name one account. */
export interface AccountIds {
  level: Level;
  enterprise_id: string;
  mozaiks_user_id: string;
  platform_user_id?: string | undefined;
}

/** The answer to "can this account (chat) continue?", with where it came from and how old it may be. */
export interface BudgetStatus {
  account_key: string;
  can_continue: boolean;
  /** Why not (`trial_exhausted`, `allowance_exhausted`, `insufficient_tokens`), or the chat's pause reason. */
  pause_reason: string | null;
  /** The asked chat, when a chat id was given: paused, and whether a resume would be honoured. */
  chat: { chat_id: string; paused: boolean; pause_reason: string | null; can_resume: boolean } | null;
  available_tokens: number;
  /** The state answered from; for an account never billed, the state a new account starts with. */
  state: BudgetState;
  source: "view" | "mongo" | "mock";
  staleness: Staleness;
}

export interface SentRecord {
  record_id: string;
  record: InputRecord;
}

export interface TopUp extends AccountIds {
  tokens: number;
  amount_micros?: number | string;
  kind?: "top_up" | "grant" | "budget_set";
  record_id?: string;
  occurred_at?: string;
}

const FRESH: Staleness = { caught_up: true, known: true, age_ms: 0, as_of: null };

function flag(value: string | undefined): boolean {
  return value === "1" || value === "true";
}

/**
 * One connection of an agent runtime to agentmeter: the batching producer, the local budget view (or
 * MongoDB in strict mode), and the read side for summaries. Or, in mock mode, the billing core in
 * process. Create one per process with `Agentmeter.connect()` and share it between managers.
 */
export class Agentmeter {
  private mongo: { client: MongoClient; layout: MongoLayout } | undefined;
  private clickhouse: ClickHouseClient | undefined;

  private constructor(
    readonly config: Config,
    readonly billing: BillingConfig,
    readonly mode: "kafka" | "mock",
    readonly budgetMode: "view" | "strict" | "mock",
    readonly logger: Logger,
    private readonly producer: BatchingProducer | undefined,
    private readonly view: BudgetView | undefined,
    /** The in-process ledger of mock mode; undefined otherwise. */
    readonly mock: MockLedger | undefined,
  ) {}

  static async connect(options: AgentmeterOptions = {}): Promise<Agentmeter> {
    const env = options.env ?? process.env;
    const config = { ...loadConfig(env), ...options.config } as Config;
    const logger = options.logger ?? createLogger(config.LOG_LEVEL, "agentmeter-sdk");
    const billing = options.billing ?? loadBillingConfig(config);
    if (options.mock ?? flag(env.AGENTMETER_MOCK)) {
      return new Agentmeter(
        config,
        billing,
        "mock",
        "mock",
        logger,
        undefined,
        undefined,
        new MockLedger(billing),
      );
    }
    const strict = options.strict ?? flag(env.AGENTMETER_STRICT);
    const kafka = createKafka(config, logger);
    const admin = kafka.admin();
    await admin.connect();
    try {
      // Same topics and settings as the processor creates: a runtime may start first.
      await ensureTopics(admin, config);
    } finally {
      await admin.disconnect();
    }
    const raw = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: DEFAULT_PARTITIONER,
    });
    await raw.connect();
    const producer = new BatchingProducer(raw, config.AGENTMETER_INPUT_TOPIC, {
      ...DEFAULT_BATCHING,
      ...options.batching,
    });
    let view: BudgetView | undefined;
    if (!strict) {
      view = new BudgetView(kafka, config.AGENTMETER_STATE_TOPIC, config.KAFKA_CLIENT_ID, logger);
      await view.start();
      await view.ready(options.viewReadyTimeoutMs ?? 30_000);
    }
    return new Agentmeter(
      config,
      billing,
      "kafka",
      strict ? "strict" : "view",
      logger,
      producer,
      view,
      undefined,
    );
  }

  /** A manager for one end user's chat in an app (Level 2). */
  tokenManager(ids: AppSessionIds): TokenManager {
    return new TokenManager(this, ids);
  }

  /** A manager for one creator's platform session (Level 1). */
  platformTokenManager(ids: PlatformSessionIds): PlatformTokenManager {
    return new PlatformTokenManager(this, ids);
  }

  /** Validates, fills `record_id`, and sends; resolves once the broker acknowledged it (mock: once applied). */
  async send(input: RecordInput): Promise<SentRecord> {
    const prepared = prepareRecord(input, this.config.AGENTMETER_MAX_RECORD_BYTES);
    if (this.mock !== undefined) {
      this.mock.apply(prepared.record);
    } else {
      await this.producer!.enqueue(accountKeyOf(prepared.record), prepared.value);
    }
    return { record_id: prepared.record.record_id, record: prepared.record };
  }

  /**
   * Sends bytes as they are, unvalidated: for the simulator's deliberately malformed records and for
   * tests of the dead-letter path. Mock mode has no topic and refuses.
   */
  async sendRaw(key: string, value: string): Promise<void> {
    if (this.producer === undefined)
      throw new AgentmeterError("CONFIG_INVALID", "sendRaw needs Kafka; mock mode has no topic");
    await this.producer.enqueue(key, value);
  }

  /** A credit record: bought tokens (`top_up`, the default), free tokens (`grant`), or a new allowance. */
  topUp(topUp: TopUp): Promise<SentRecord> {
    const { kind, tokens, amount_micros, record_id, occurred_at, ...ids } = topUp;
    return this.send({
      type: "credit",
      kind: kind ?? "top_up",
      ...ids,
      tokens,
      ...(amount_micros === undefined ? {} : { amount_micros }),
      ...(record_id === undefined ? {} : { record_id }),
      occurred_at: occurred_at ?? new Date().toISOString(),
    });
  }

  /**
   * Can the account continue: from the local view (a Map lookup), MongoDB in strict mode, or the mock
   * ledger. With `chatId`, also that chat's pause state.
   */
  async budget(ids: AccountIds, chatId?: string): Promise<BudgetStatus> {
    const key = accountKeyOf(ids);
    if (this.mock !== undefined) return this.status(ids, this.mock.budgetState(key), "mock", FRESH, chatId);
    if (this.view !== undefined) {
      const { state, staleness } = this.view.get(key);
      return this.status(ids, state, "view", staleness, chatId);
    }
    const account = await this.account(ids);
    const state = account === null ? null : budgetStateOf(account);
    return this.status(
      ids,
      state,
      "mongo",
      { ...FRESH, known: state !== null, as_of: state?.as_of ?? null },
      chatId,
    );
  }

  /** Waits until the view shows a state of the account that passes `test` (mock and strict: checks once). */
  async waitForBudget(
    ids: AccountIds,
    test: (state: BudgetState) => boolean,
    timeoutMs = 30_000,
  ): Promise<BudgetState> {
    if (this.view !== undefined) return this.view.waitFor(accountKeyOf(ids), test, timeoutMs);
    const status = await this.budget(ids);
    if (!test(status.state)) {
      throw new AgentmeterError("VIEW_NOT_READY", `the budget of ${status.account_key} is not as awaited`);
    }
    return status.state;
  }

  /** The account's full document (balances, money, open chats): MongoDB, or the mock ledger. */
  async account(ids: AccountIds): Promise<AccountState | null> {
    if (this.mock !== undefined) return this.mock.account(accountKeyOf(ids));
    const account = await readAccount(this.mongoLayout(), ids);
    return account === null ? null : (account as AccountState);
  }

  /** The app's document in MozaiksPlatform.Enterprises (first and last use, creator); mock: null. */
  async enterprise(enterpriseId: string): Promise<Document | null> {
    if (this.mock !== undefined) return null;
    return this.mongoLayout()
      .platform()
      .collection(COLLECTIONS.platform.enterprises)
      .findOne({ _id: enterpriseId as never });
  }

  /** A workflow's averages over its finished sessions (ClickHouse `workflow_averages`; mock: the ledger's). */
  async workflowAverages(workflowName: string, enterpriseId: string): Promise<WorkflowAverages | null> {
    if (this.mock !== undefined) return this.mock.workflowAverages(workflowName, enterpriseId);
    this.clickhouse ??= createClickHouse({
      url: this.config.CLICKHOUSE_URL,
      username: this.config.CLICKHOUSE_USER,
      password: this.config.CLICKHOUSE_PASSWORD,
    });
    try {
      return await workflowAverages(
        this.clickhouse,
        this.config.CLICKHOUSE_DATABASE,
        workflowName,
        enterpriseId,
      );
    } catch (error) {
      // No processor has created the analytics tables yet: there is no baseline, which is an answer.
      if (
        /UNKNOWN_TABLE|UNKNOWN_DATABASE|doesn't exist|does not exist/i.test(String((error as Error).message))
      )
        return null;
      throw error;
    }
  }

  /** Records sent and acknowledged, and states the view has read (for progress lines and tests). */
  stats(): { acked: number; viewStates: number; viewCaughtUp: boolean } {
    return {
      acked: this.producer?.acked ?? 0,
      viewStates: this.view?.size ?? 0,
      viewCaughtUp: this.view?.isCaughtUp ?? true,
    };
  }

  /** Sends everything accepted so far and waits for the acknowledgements. */
  async flush(): Promise<void> {
    await this.producer?.flush();
  }

  /** Flushes (nothing accepted is lost), then closes every client. Further sends fail with SDK_CLOSED. */
  async close(): Promise<void> {
    await this.producer?.close();
    await this.view?.stop();
    await this.mongo?.client.close();
    await this.clickhouse?.close();
  }

  private mongoLayout(): MongoLayout {
    if (this.mongo === undefined) {
      const client = createMongo(this.config.MONGODB_URI);
      this.mongo = {
        client,
        layout: new MongoLayout(client, layoutNames(this.config)),
      };
    }
    return this.mongo.layout;
  }

  private status(
    ids: AccountIds,
    known: BudgetState | null,
    source: BudgetStatus["source"],
    staleness: Staleness,
    chatId: string | undefined,
  ): BudgetStatus {
    const state = known ?? this.newAccountState(ids);
    const paused =
      chatId === undefined ? undefined : state.paused_chats.find((chat) => chat.chat_id === chatId);
    const chat =
      chatId === undefined
        ? null
        : {
            chat_id: chatId,
            paused: paused !== undefined,
            pause_reason: paused?.pause_reason ?? null,
            can_resume: paused === undefined ? state.can_continue : paused.can_resume || state.can_continue,
          };
    return {
      account_key: state.account_key,
      can_continue: state.can_continue,
      pause_reason: state.pause_reason ?? chat?.pause_reason ?? null,
      chat,
      available_tokens: state.available_tokens,
      state,
      source,
      staleness,
    };
  }

  /** What the processor will create on the account's first record: its level's allowance, nothing used. */
  private newAccountState(ids: AccountIds): BudgetState {
    const app = ids.level === "app_usage";
    const allowance = app
      ? (ownValue(this.billing.app_trial_tokens.per_app, ids.enterprise_id) ??
        this.billing.app_trial_tokens.default)
      : this.billing.platform_allowance_tokens;
    return {
      schema_version: SCHEMA_VERSION,
      account_key: accountKeyOf(ids),
      level: ids.level,
      enterprise_id: app ? ids.enterprise_id : null,
      mozaiks_user_id: ids.mozaiks_user_id,
      platform_user_id: app ? (ids.platform_user_id ?? null) : null,
      can_continue: allowance > 0,
      pause_reason: allowance > 0 ? null : app ? "trial_exhausted" : "allowance_exhausted",
      allowance_tokens: allowance,
      trial_remaining_tokens: allowance,
      paid_tokens: 0,
      available_tokens: allowance,
      paused_chats: [],
      as_of: null,
    };
  }
}
