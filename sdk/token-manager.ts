import { addUsage, summarizeChat } from "../pipeline/core/chats.ts";
import {
  type CostThresholdAnalysis,
  checkWorkflowCostThresholds,
  type WorkflowAverages,
} from "../pipeline/core/cost-thresholds.ts";
import type { AccountState, ChatState } from "../pipeline/core/index.ts";
import { outputBase } from "../pipeline/core/output-base.ts";
import { priceUsage } from "../pipeline/core/pricebook.ts";
import { AgentmeterError } from "../pipeline/errors.ts";
import {
  type AgentUsage,
  accountKeyOf,
  type Level,
  microsToDecimalString,
  type SessionRecord,
  type SessionSummary,
  type UsageRecord,
} from "../schemas/index.ts";
import type { AccountIds, Agentmeter, BudgetStatus, SentRecord } from "./client.ts";
import { uuidv7 } from "./record-id.ts";
import { prepareRecord } from "./validate.ts";

/** One agent's tokens in one call of trackUsage (the seed's agent_usage value). */
export type AgentUsageInput = AgentUsage;

export interface TrackOptions {
  /** Default model of the agents that name none. */
  model?: string;
  record_id?: string;
  /** Event time; default now. */
  occurred_at?: string;
  connection_state?: UsageRecord["connection_state"];
}

export interface UsageReceipt {
  record_id: string;
  tokens_used: number;
  /** Cost at list price, by the core's price book and rounding (whoever pays: trial or paid). */
  cost_micros: bigint;
}

/** What finalizeSession returns: the seed's PerformanceMetrics plus the comparison with WorkflowAverages. */
export interface SessionResult {
  chat_id: string;
  session_id: string;
  enterprise_id: string;
  workflow_name: string;
  level: Level;
  /** The finalize record. */
  record_id: string;
  session_summary: {
    total_tokens: number;
    total_cost_micros: bigint;
    /** Display only (`0.462`). */
    total_cost: string;
    session_duration_seconds: number;
    agents_used: string[];
  };
  agent_performance: SessionSummary["agent_performance"];
  /** The workflow's averages before this session (null: no finished session yet). */
  workflow_averages: WorkflowAverages | null;
  cost_analysis: CostThresholdAnalysis;
  timestamp: string;
  /** The same figures in the core's `session_summary` shape (what ClickHouse and TokenChats hold). */
  summary: SessionSummary;
}

export interface TrialUsage {
  allowance_tokens: number;
  trial_used_tokens: number;
  trial_remaining_tokens: number;
  /** True while the account spends its trial (or platform allowance), nothing bought yet used. */
  is_free_trial: boolean;
  source: BudgetStatus["source"];
}

/** Figures of an account document (AppUsers or MozaiksUsers), money in micros. */
export interface AccountData {
  account_key: string;
  allowance_tokens: number;
  trial_used_tokens: number;
  credited_tokens: number;
  paid_tokens: number;
  tokens_used: number;
  cost_micros: bigint;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
  open_chats: string[];
  as_of: string | null;
}

interface SessionIds {
  enterprise_id: string;
  mozaiks_user_id: string;
  workflow_name: string;
  chat_id?: string;
  session_id?: string;
  /** The seed's user_id (the person inside the workflow, if not the account's user). */
  user_id?: string;
  workflow_type?: string;
  /** Default model of this session's agents. */
  model?: string;
}

export interface AppSessionIds extends SessionIds {
  platform_user_id: string;
}

export type PlatformSessionIds = SessionIds;

function toAccountData(account: AccountState): AccountData {
  return {
    account_key: account.account_key,
    allowance_tokens: account.allowance_tokens,
    trial_used_tokens: account.trial_used_tokens,
    credited_tokens: account.credited_tokens,
    paid_tokens: account.credited_tokens - account.paid_used_tokens,
    tokens_used: account.tokens_used,
    cost_micros: BigInt(account.cost_micros),
    billed_micros: BigInt(account.billed_micros),
    creator_share_micros: BigInt(account.creator_share_micros),
    platform_fee_micros: BigInt(account.platform_fee_micros),
    open_chats: Object.keys(account.chats).sort(),
    as_of: account.last_event_at,
  };
}

/**
 * One chat of one account, metered: the seed's TokenManager methods over records. Every method that
 * changes billing sends a record (start, usage, pause, resume, finalize, credit); the processor applies
 * it. The session's figures are also kept here, priced with the core's own price book and rounding, so
 * finalizeSession can answer at once with the numbers the processor will write.
 */
abstract class SessionMeter {
  readonly chat_id: string;
  readonly session_id: string;
  protected readonly ids: AccountIds;
  private readonly chat: ChatState;
  private readonly pending = new Map<string, { response_time_ms: number; message_count: number }>();
  private lastSentAt: string | null = null;
  private started = false;

  protected constructor(
    protected readonly meter: Agentmeter,
    level: Level,
    private readonly session: SessionIds & { platform_user_id?: string },
    private readonly workflowType: string,
  ) {
    this.chat_id = session.chat_id ?? `chat-${uuidv7()}`;
    this.session_id = session.session_id ?? this.chat_id;
    this.ids = {
      level,
      enterprise_id: session.enterprise_id,
      mozaiks_user_id: session.mozaiks_user_id,
      ...(level === "app_usage" ? { platform_user_id: session.platform_user_id } : {}),
    };
    const now = new Date().toISOString();
    this.chat = {
      session_id: this.session_id,
      workflow_name: session.workflow_name,
      started_at: now,
      last_event_at: now,
      paused: false,
      pause_reason: null,
      can_resume: false,
      total_tokens: 0,
      cost_micros: 0n,
      billed_micros: 0n,
      agents: {},
    };
  }

  get accountKey(): string {
    return accountKeyOf(this.ids);
  }

  /** Running totals of this session as tracked here. */
  get sessionUsage(): { total_tokens: number; total_cost_micros: bigint } {
    return { total_tokens: this.chat.total_tokens, total_cost_micros: this.chat.cost_micros };
  }

  /** Starts the session (a `start` record) and returns the budget; in view mode the view is already caught up. */
  protected async start(): Promise<BudgetStatus> {
    const occurred_at = new Date().toISOString();
    this.chat.started_at = occurred_at;
    this.chat.last_event_at = occurred_at;
    await this.sendSession("start", occurred_at);
    this.started = true;
    return this.budgetStatus();
  }

  /** The seed's can_continue(): answered from the local view (no database call), MongoDB in strict mode. */
  async canContinue(): Promise<boolean> {
    return (await this.budgetStatus()).can_continue;
  }

  /** canContinue with the reason, this chat's pause state and how stale the answer may be. */
  budgetStatus(): Promise<BudgetStatus> {
    return this.meter.budget(this.ids, this.chat_id);
  }

  /**
   * Waits until the budget view reflects the last record this manager sent (by event time), so the next
   * canContinue is not older than this manager's own usage. Best effort: other producers of the account
   * are not waited for.
   */
  async syncBudget(timeoutMs = 30_000): Promise<BudgetStatus> {
    const last = this.lastSentAt;
    if (last !== null && this.meter.budgetMode === "view") {
      const lastMs = Date.parse(last);
      await this.meter.waitForBudget(
        this.ids,
        (state) => state.as_of !== null && Date.parse(state.as_of) >= lastMs,
        timeoutMs,
      );
    }
    return this.budgetStatus();
  }

  protected async usage(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options: TrackOptions = {},
  ): Promise<UsageReceipt> {
    const agents: Record<string, AgentUsageInput> = {};
    for (const [name, usage] of Object.entries(agentUsage)) {
      const extra = this.pending.get(name);
      this.pending.delete(name);
      agents[name] =
        extra === undefined
          ? { ...usage }
          : {
              ...usage,
              response_time_ms: (usage.response_time_ms ?? 0) + extra.response_time_ms,
              message_count: (usage.message_count ?? 0) + extra.message_count,
            };
    }
    const model = options.model ?? this.session.model;
    const sent = await this.send(
      {
        type: "usage",
        ...(options.record_id === undefined ? {} : { record_id: options.record_id }),
        ...this.ids,
        ...(this.session.user_id === undefined ? {} : { user_id: this.session.user_id }),
        workflow_type: this.workflowType,
        workflow_name: this.session.workflow_name,
        session_id: this.session_id,
        chat_id: this.chat_id,
        ...(model === undefined ? {} : { model }),
        agent_usage: agents,
        occurred_at: options.occurred_at ?? new Date().toISOString(),
        ...(options.connection_state === undefined ? {} : { connection_state: options.connection_state }),
      },
      (record) => {
        // Priced before sending: a model the price book does not know is refused here, not dead-lettered later.
        const priced = priceUsage(record as UsageRecord, this.meter.billing);
        if (!priced.ok) throw new AgentmeterError("UNKNOWN_MODEL", priced.reason);
        return priced;
      },
    );
    return sent;
  }

  /** The seed's track_agent_response_time: added to the agent's next usage record (or to finalize). */
  trackAgentResponseTime(agentName: string, responseTimeMs: number): void {
    const entry = this.pendingOf(agentName);
    entry.response_time_ms += responseTimeMs;
  }

  /**
   * The seed's track_agent_message: counts one message of the agent. The content is not metered and not
   * sent (conversation storage is the runtime's, not the billing pipeline's).
   */
  trackAgentMessage(agentName: string, _content?: string, _role?: string): void {
    this.pendingOf(agentName).message_count += 1;
  }

  /**
   * The seed's handle_no_tokens: pauses this chat with a reason (a `pause` record) and returns the
   * budget. The processor already pauses a chat whose usage exhausts the account; this records the
   * runtime's own stop, with the exhaustion reason unless one is given.
   */
  async handleNoTokens(reason?: string): Promise<BudgetStatus> {
    const status = await this.budgetStatus();
    await this.sendSession(
      "pause",
      new Date().toISOString(),
      reason ?? status.pause_reason ?? "insufficient_tokens",
    );
    return status;
  }

  /** The seed's save_chat_state / save_chat_pause: the chat stops here and can be resumed later (a `pause` record). */
  async saveChatState(reason = "user_requested"): Promise<void> {
    await this.sendSession("pause", new Date().toISOString(), reason);
  }

  /** Alias of saveChatState, the seed's save_chat_pause. */
  saveChatPause(reason = "user_requested"): Promise<void> {
    return this.saveChatState(reason);
  }

  /** The seed's can_resume_chat: the account can pay again (a paused chat was made resumable, or is not paused). */
  async canResumeChat(): Promise<boolean> {
    const status = await this.budgetStatus();
    return status.chat?.can_resume ?? status.can_continue;
  }

  /** The seed's resume_chat: a `resume` record if the chat can resume; false (nothing sent) if it cannot. */
  async resumeChat(): Promise<boolean> {
    if (!(await this.canResumeChat())) return false;
    await this.sendSession("resume", new Date().toISOString());
    return true;
  }

  /** A credit for this account (tests, admin tools): bought tokens by default. */
  topUp(
    tokens: number,
    amountMicros?: number | string,
    kind: "top_up" | "grant" = "top_up",
  ): Promise<SentRecord> {
    return this.meter.topUp({
      ...this.ids,
      tokens,
      kind,
      ...(amountMicros === undefined ? {} : { amount_micros: amountMicros }),
    });
  }

  /** The seed's track_trial_usage: the trial (app) or allowance (platform) figures, from the budget state. */
  async trackTrialUsage(): Promise<TrialUsage> {
    const status = await this.budgetStatus();
    const state = status.state;
    return {
      allowance_tokens: state.allowance_tokens,
      trial_used_tokens: state.allowance_tokens - state.trial_remaining_tokens,
      trial_remaining_tokens: state.trial_remaining_tokens,
      is_free_trial: state.trial_remaining_tokens > 0 && state.paid_tokens >= 0,
      source: status.source,
    };
  }

  /** The account document (MongoDB; mock: the ledger). null before the processor has written it. */
  protected async loadAccount(): Promise<AccountData | null> {
    const account = await this.meter.account(this.ids);
    return account === null ? null : toAccountData(account);
  }

  /** The seed's check_workflow_cost_thresholds for the running session, against the workflow's averages. */
  async checkWorkflowCostThresholds(
    options: { multiple?: number; minSessions?: number } = {},
  ): Promise<CostThresholdAnalysis> {
    const averages = await this.meter.workflowAverages(
      this.session.workflow_name,
      this.session.enterprise_id,
    );
    return this.costAnalysis(averages, options);
  }

  protected async finalize(
    options: { multiple?: number; minSessions?: number } = {},
  ): Promise<SessionResult> {
    // Response times or messages reported for agents with no usage since: carried by a zero-token record,
    // so the processor's summary has them too.
    if (this.pending.size > 0) {
      const carried: Record<string, AgentUsageInput> = {};
      for (const name of this.pending.keys()) carried[name] = { prompt_tokens: 0, completion_tokens: 0 };
      await this.usage(carried);
    }
    // Read before the finalize record: the comparison is with the sessions before this one.
    const averages = await this.meter.workflowAverages(
      this.session.workflow_name,
      this.session.enterprise_id,
    );
    const endedAt = new Date().toISOString();
    const sent = await this.sendSession("finalize", endedAt);
    const summary = summarizeChat(this.chat_id, this.chat, endedAt, outputBase(sent.record));

    return {
      chat_id: this.chat_id,
      session_id: this.session_id,
      enterprise_id: this.session.enterprise_id,
      workflow_name: this.session.workflow_name,
      level: this.ids.level,
      record_id: sent.record_id,
      session_summary: {
        total_tokens: summary.total_tokens,
        total_cost_micros: summary.total_cost_micros,
        total_cost: microsToDecimalString(summary.total_cost_micros),
        session_duration_seconds: summary.session_duration_seconds,
        agents_used: summary.agents_used,
      },
      agent_performance: summary.agent_performance,
      workflow_averages: averages,
      cost_analysis: this.costAnalysis(averages, options),
      timestamp: endedAt,
      summary,
    };
  }

  private costAnalysis(
    averages: WorkflowAverages | null,
    options: { multiple?: number; minSessions?: number },
  ): CostThresholdAnalysis {
    return checkWorkflowCostThresholds({
      currentCostMicros: this.chat.cost_micros,
      currentTokens: this.chat.total_tokens,
      averages,
      ...options,
    });
  }

  private pendingOf(agentName: string): { response_time_ms: number; message_count: number } {
    let entry = this.pending.get(agentName);
    if (entry === undefined) {
      entry = { response_time_ms: 0, message_count: 0 };
      this.pending.set(agentName, entry);
    }
    return entry;
  }

  private async sendSession(
    event: SessionRecord["event"],
    occurredAt: string,
    pauseReason?: string,
  ): Promise<SentRecord> {
    if (event !== "start" && !this.started) {
      // The core opens a chat on any record, but the session's start time would then be wrong here.
      this.chat.started_at = occurredAt;
      this.started = true;
    }
    const sent = await this.meter.send({
      type: "session",
      event,
      ...this.ids,
      session_id: this.session_id,
      chat_id: this.chat_id,
      workflow_name: this.session.workflow_name,
      occurred_at: occurredAt,
      ...(pauseReason === undefined ? {} : { pause_reason: pauseReason }),
    });
    this.lastSentAt = occurredAt;
    return sent;
  }

  private async send(
    input: Parameters<Agentmeter["send"]>[0],
    price: (record: unknown) => Extract<ReturnType<typeof priceUsage>, { ok: true }>,
  ): Promise<UsageReceipt> {
    // Validate and price first, then add to the local totals only once the send succeeded.
    const prepared = prepareRecord(input, this.meter.config.AGENTMETER_MAX_RECORD_BYTES);
    const priced = price(prepared.record);
    const sent = await this.meter.send({ ...input, record_id: prepared.record.record_id } as never);
    if (!this.started) {
      this.chat.started_at = prepared.record.occurred_at;
      this.started = true;
    }
    addUsage(this.chat, priced.agents, priced.cost_micros, 0n);
    this.chat.last_event_at = prepared.record.occurred_at;
    this.lastSentAt = prepared.record.occurred_at;
    let tokens = 0;
    for (const agent of Object.values(priced.agents)) tokens += agent.prompt_tokens + agent.completion_tokens;
    return { record_id: sent.record_id, tokens_used: tokens, cost_micros: priced.cost_micros };
  }
}

/** App level (Level 2): an end user (`platform_user_id`) chatting with an app (`enterprise_id`). */
export class TokenManager extends SessionMeter {
  constructor(meter: Agentmeter, ids: AppSessionIds) {
    super(meter, "app_usage", ids, ids.workflow_type ?? "chat_interaction");
  }

  /** The seed's initialize_budget: starts the session (a `start` record) and returns the end user's budget. */
  initializeBudget(): Promise<BudgetStatus> {
    return this.start();
  }

  /** The seed's track_usage: one record with each agent's prompt and completion tokens. */
  trackUsage(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /**
   * The seed's deduct_app_tokens. Tokens are deducted by the processor when it applies a usage record,
   * never directly, so this is trackUsage under the seed's name.
   */
  deductAppTokens(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /** The seed's finalize_session: a `finalize` record; returns the session's summary and its comparison. */
  finalizeSession(options?: { multiple?: number; minSessions?: number }): Promise<SessionResult> {
    return this.finalize(options);
  }

  /** The seed's load_app_user_data: the end user's AppUsers document. */
  loadAppUserData(): Promise<AccountData | null> {
    return this.loadAccount();
  }

  /** The seed's load_enterprise_data: the app's Enterprises document and its creator's platform account. */
  async loadEnterpriseData(): Promise<{
    enterprise: Record<string, unknown> | null;
    creator: AccountData | null;
  }> {
    const enterprise = await this.meter.enterprise(this.ids.enterprise_id);
    const creator = await this.meter.account({ ...this.ids, level: "platform", platform_user_id: undefined });
    return { enterprise, creator: creator === null ? null : toAccountData(creator) };
  }
}

/** Platform level (Level 1): a creator (`mozaiks_user_id`) building an app with agent workflows. */
export class PlatformTokenManager extends SessionMeter {
  constructor(meter: Agentmeter, ids: PlatformSessionIds) {
    super(meter, "platform", ids, ids.workflow_type ?? "app_generation");
  }

  /** The seed's initialize_platform_budget. */
  initializePlatformBudget(): Promise<BudgetStatus> {
    return this.start();
  }

  /** The seed's track_platform_usage. */
  trackPlatformUsage(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /** The seed's deduct_tokens (enterprise side): trackPlatformUsage under the seed's name. */
  deductTokens(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /** The seed's finalize_platform_session. */
  finalizePlatformSession(options?: { multiple?: number; minSessions?: number }): Promise<SessionResult> {
    return this.finalize(options);
  }

  /** The seed's load_enterprise_data at Level 1: the creator's MozaiksUsers document and the app's Enterprises document. */
  async loadEnterpriseData(): Promise<{
    enterprise: Record<string, unknown> | null;
    creator: AccountData | null;
  }> {
    const enterprise = await this.meter.enterprise(this.ids.enterprise_id);
    return { enterprise, creator: await this.loadAccount() };
  }
}
