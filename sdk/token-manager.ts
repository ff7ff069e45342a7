import { summarizeChat } from "../pipeline/core/chats.ts";
import {
  type CostThresholdAnalysis,
  checkWorkflowCostThresholds,
  type WorkflowAverages,
} from "../pipeline/core/cost-thresholds.ts";
import {
  type AccountState,
  type ChatState,
  emptyChat,
  paidTokens,
  priceUsage,
  type SessionMetrics,
  sessionMetricsOf,
  tallyUsage,
  tokenTotals,
  trialUsageOf,
} from "../pipeline/core/index.ts";
import { outputBase } from "../pipeline/core/output-base.ts";
import { AgentmeterError } from "../pipeline/errors.ts";
import {
  type AgentUsage,
  accountKeyOf,
  agentUsageMapSchema,
  formatIssues,
  type Level,
  type SessionRecord,
  type SessionSummary,
  type UsageRecord,
} from "../schemas/index.ts";
import { type HoldGrant, runHeld } from "./holds.ts";
import { uuidv7 } from "./record-id.ts";
import type { AccountIds, BudgetStatus, SentRecord, SessionClient } from "./session-client.ts";
import { type PreparedRecord, type RecordInput, RecordInvalidError } from "./validate.ts";

/** A usage record's prices, once the price book knew every model of it. */
type PricedRecord = Extract<ReturnType<typeof priceUsage>, { ok: true }>;

/** One agent's tokens in one call of trackUsage. */
export type AgentUsageInput = AgentUsage;

export interface TrackOptions {
  /** Default model of the agents that name none. */
  model?: string;
  record_id?: string;
  /** Event time; default now. */
  occurred_at?: string;
  connection_state?: UsageRecord["connection_state"];
  /** The open hold this usage settles (see reserve). */
  hold_id?: string;
}

/** Options of a hold on this manager's chat (the account and chat are the manager's). */
export interface ReserveOptions {
  hold_id?: string;
  expires_at?: string;
  ttl_ms?: number;
  record_id?: string;
  occurred_at?: string;
  timeout_ms?: number;
}

export interface UsageReceipt {
  record_id: string;
  tokens_used: number;
  /** Cost at list price, by the core's price book and rounding (whoever pays: trial or paid). */
  cost_micros: bigint;
}

/** What finalizeSession returns: the session's performance figures and their comparison with the workflow's averages. */
export interface SessionResult {
  chat_id: string;
  session_id: string;
  enterprise_id: string;
  workflow_name: string;
  level: Level;
  /** The finalize record. */
  record_id: string;
  session_summary: SessionMetrics;
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
  /** The person inside the workflow, when it is not the account's user. */
  user_id?: string;
  workflow_type?: string;
  /** Default model of this session's agents. */
  model?: string;
}

export interface AppSessionIds extends SessionIds {
  platform_user_id: string;
}

export type PlatformSessionIds = SessionIds;

type CostOptions = { multiple?: number; minSessions?: number };

function toAccountData(account: AccountState): AccountData {
  return {
    account_key: account.account_key,
    allowance_tokens: account.allowance_tokens,
    trial_used_tokens: account.trial_used_tokens,
    credited_tokens: account.credited_tokens,
    paid_tokens: paidTokens(account),
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
 * One chat of one account, metered. Every method that changes billing sends a record (start, usage,
 * pause, resume, finalize, credit) and the processor applies it. The chat's figures are also tallied
 * here by the core's pricing, totals and summary, so finalize answers at once with the numbers the
 * processor will write.
 */
abstract class SessionMeter {
  readonly chat_id: string;
  readonly session_id: string;
  protected readonly ids: AccountIds;
  private chat: ChatState;
  /** Usage record ids tallied into this session: a record sent again (a retry) is counted once, as the core counts it. */
  private readonly tallied = new Set<string>();
  private readonly pending = new Map<string, { response_time_ms: number; message_count: number }>();
  private lastSentAt: string | null = null;
  private started = false;

  protected constructor(
    protected readonly meter: SessionClient,
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
    // The ids are checked now, as the session's first record will be (the record schema, through the
    // meter): a manager of an account that cannot exist would otherwise answer canContinue() for it.
    meter.prepare({
      type: "session",
      event: "start",
      ...this.ids,
      session_id: this.session_id,
      chat_id: this.chat_id,
      workflow_name: session.workflow_name,
      occurred_at: now,
    });
    this.chat = emptyChat({
      session_id: this.session_id,
      workflow_name: session.workflow_name,
      started_at: now,
    });
  }

  get accountKey(): string {
    return accountKeyOf(this.ids);
  }

  /** Running totals of this session as tallied here. */
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

  /** Whether the account may go on: from the local view (no database call), MongoDB in strict mode. */
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
    const prepared = this.meter.prepare({
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
      ...(options.hold_id === undefined ? {} : { hold_id: options.hold_id }),
    });
    const priced = this.priced(prepared);
    // Taken off only now that the record is valid and priced: a refused call leaves the tracked times and
    // counts for the caller's corrected retry. From here the record carries them, and a failed send is
    // resent as this same record, so they must not go into another.
    for (const name of Object.keys(agents)) this.pending.delete(name);
    return this.sendPriced(prepared, priced);
  }

  /**
   * Sends a usage record prepare() made (or, again, one whose send failed: the same record_id is counted
   * once) and tallies it into the session once sent.
   */
  protected async sendUsage(prepared: PreparedRecord): Promise<UsageReceipt> {
    return this.sendPriced(prepared, this.priced(prepared));
  }

  /**
   * The record's prices. A model the price book does not know is refused here, in the caller's stack,
   * not dead-lettered later.
   */
  private priced(prepared: PreparedRecord): PricedRecord {
    const priced = priceUsage(prepared.record as UsageRecord, this.meter.billing);
    if (!priced.ok) throw new AgentmeterError(priced.code, priced.reason);
    return priced;
  }

  private async sendPriced(prepared: PreparedRecord, priced: PricedRecord): Promise<UsageReceipt> {
    const record = prepared.record as UsageRecord;
    await this.meter.sendPrepared(prepared);
    // Tallied only once the send succeeded: a failed send is not part of the session.
    if (!this.tallied.has(record.record_id)) {
      this.tallied.add(record.record_id);
      this.markStarted(record.occurred_at);
      tallyUsage(this.chat, priced, record.occurred_at);
    }
    this.lastSentAt = record.occurred_at;
    return {
      record_id: record.record_id,
      tokens_used: tokenTotals(priced.agents).total_tokens,
      cost_micros: priced.cost_micros,
    };
  }

  /**
   * Reserves `tokens` for one agent turn of this chat (a hold record) and resolves with the decision:
   * `{granted, hold_id, available, ...}`. Mock mode decides in process; a Kafka connection hears the
   * processor's decision on the holds topic. See docs/holds.md.
   */
  reserve(tokens: number, options: ReserveOptions = {}): Promise<HoldGrant> {
    return this.meter.reserve({ ...this.ids, chat_id: this.chat_id, tokens, ...options });
  }

  /** The turn's real usage, settling the hold: billed as any usage, the rest of the hold released. */
  settle(
    holdId: string,
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options: TrackOptions = {},
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, { ...options, hold_id: holdId });
  }

  /** Gives the hold back unused (the turn failed or was cancelled). */
  release(holdId: string): Promise<SentRecord> {
    return this.meter.release({ ...this.ids, hold_id: holdId });
  }

  /**
   * Reserves `estimate` tokens, runs the turn, and settles with the agent usage the turn returns; if
   * the turn throws, releases the hold and rethrows; a settle whose send fails is sent again, the same
   * record (runHeld). Not granted: HOLD_DENIED, the turn does not run.
   */
  withHold(
    estimate: number,
    turn: (hold: HoldGrant) => Promise<Readonly<Record<string, AgentUsageInput>>>,
    options: ReserveOptions & { track?: Omit<TrackOptions, "hold_id"> } = {},
  ): Promise<{ hold: HoldGrant; receipt: UsageReceipt }> {
    const { track, ...reserveOptions } = options;
    return runHeld(
      () => this.reserve(estimate, reserveOptions),
      turn,
      (hold, usage) => this.settle(hold.hold_id, usage, track),
      (hold) => this.release(hold.hold_id),
      (record) => this.sendUsage(this.meter.prepare(record as RecordInput)),
    ).then(({ hold, settled }) => ({ hold, receipt: settled }));
  }

  /** Adds a response time to the agent's next usage record (or to the one finalize sends). */
  trackAgentResponseTime(agentName: string, responseTimeMs: number): void {
    const total = (this.pending.get(agentName)?.response_time_ms ?? 0) + responseTimeMs;
    checkAgentFigure(agentName, "response_time_ms", responseTimeMs);
    checkAgentFigure(agentName, "response_time_ms", total);
    this.pendingOf(agentName).response_time_ms = total;
  }

  /**
   * Counts one message of the agent. The content is not metered and not sent (conversation storage is
   * the runtime's, not the billing pipeline's).
   */
  trackAgentMessage(agentName: string, _content?: string, _role?: string): void {
    const total = (this.pending.get(agentName)?.message_count ?? 0) + 1;
    checkAgentFigure(agentName, "message_count", total);
    this.pendingOf(agentName).message_count = total;
  }

  /**
   * The runtime ran out of tokens: pauses this chat with a reason (a `pause` record) and returns the
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

  /** The chat stops here and can be resumed later (a `pause` record). */
  async saveChatState(reason = "user_requested"): Promise<void> {
    await this.sendSession("pause", new Date().toISOString(), reason);
  }

  /** Alias of saveChatState. */
  saveChatPause(reason = "user_requested"): Promise<void> {
    return this.saveChatState(reason);
  }

  /** The account can pay again (a paused chat was made resumable, or the chat is not paused). */
  async canResumeChat(): Promise<boolean> {
    const status = await this.budgetStatus();
    return status.chat?.can_resume ?? status.can_continue;
  }

  /** A `resume` record if the chat can resume; false (nothing sent) if it cannot. */
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

  /** The trial (app) or allowance (platform) figures, from the budget state. */
  async trackTrialUsage(): Promise<TrialUsage> {
    const status = await this.budgetStatus();
    return { ...trialUsageOf(status.state), source: status.source };
  }

  /** The account document (MongoDB; mock: the ledger). null before the processor has written it. */
  protected async loadAccount(): Promise<AccountData | null> {
    const account = await this.meter.account(this.ids);
    return account === null ? null : toAccountData(account);
  }

  /** The running session's cost and tokens against the workflow's averages. */
  async checkWorkflowCostThresholds(options: CostOptions = {}): Promise<CostThresholdAnalysis> {
    const averages = await this.meter.workflowAverages(
      this.session.workflow_name,
      this.session.enterprise_id,
    );
    return this.costAnalysis(averages, options);
  }

  protected async finalize(options: CostOptions = {}): Promise<SessionResult> {
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
    const costAnalysis = this.costAnalysis(averages, options);
    // The core closes the chat at its finalize: usage after it opens a new one, whose summary starts
    // from zero. The tally here does the same.
    this.chat = emptyChat({
      session_id: this.session_id,
      workflow_name: this.session.workflow_name,
      started_at: endedAt,
    });
    this.started = false;
    return {
      chat_id: this.chat_id,
      session_id: this.session_id,
      enterprise_id: this.session.enterprise_id,
      workflow_name: this.session.workflow_name,
      level: this.ids.level,
      record_id: sent.record_id,
      session_summary: sessionMetricsOf(summary),
      agent_performance: summary.agent_performance,
      workflow_averages: averages,
      cost_analysis: costAnalysis,
      timestamp: endedAt,
      summary,
    };
  }

  private costAnalysis(averages: WorkflowAverages | null, options: CostOptions): CostThresholdAnalysis {
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

  /** The first record sent opens the session: its time is the session's start. */
  private markStarted(occurredAt: string): void {
    if (this.started) return;
    this.chat.started_at = occurredAt;
    this.started = true;
  }

  private async sendSession(
    event: SessionRecord["event"],
    occurredAt: string,
    pauseReason?: string,
  ): Promise<SentRecord> {
    // The core opens a chat on any record, so a session whose first record is a pause starts there.
    if (event !== "start") this.markStarted(occurredAt);
    const input: RecordInput = {
      type: "session",
      event,
      ...this.ids,
      session_id: this.session_id,
      chat_id: this.chat_id,
      workflow_name: this.session.workflow_name,
      occurred_at: occurredAt,
      ...(pauseReason === undefined ? {} : { pause_reason: pauseReason }),
    };
    const sent = await this.meter.sendPrepared(this.meter.prepare(input));
    this.lastSentAt = occurredAt;
    return sent;
  }
}

/** App level (Level 2): an end user (`platform_user_id`) chatting with an app (`enterprise_id`). */
export class TokenManager extends SessionMeter {
  constructor(meter: SessionClient, ids: AppSessionIds) {
    super(meter, "app_usage", ids, ids.workflow_type ?? "chat_interaction");
  }

  /** Starts the session (a `start` record) and returns the end user's budget. */
  initializeBudget(): Promise<BudgetStatus> {
    return this.start();
  }

  /** One usage record with each agent's prompt and completion tokens. */
  trackUsage(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /**
   * trackUsage under another name: tokens are deducted by the processor when it applies a usage
   * record, never directly.
   */
  deductAppTokens(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /** A `finalize` record; returns the session's summary and its comparison with the workflow's averages. */
  finalizeSession(options?: CostOptions): Promise<SessionResult> {
    return this.finalize(options);
  }

  /** The end user's account document (AppUsers). */
  loadAppUserData(): Promise<AccountData | null> {
    return this.loadAccount();
  }

  /** The app's Enterprises document and its creator's platform account. */
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
  constructor(meter: SessionClient, ids: PlatformSessionIds) {
    super(meter, "platform", ids, ids.workflow_type ?? "app_generation");
  }

  /** Starts the session (a `start` record) and returns the creator's platform budget. */
  initializePlatformBudget(): Promise<BudgetStatus> {
    return this.start();
  }

  /** One usage record with each agent's prompt and completion tokens. */
  trackPlatformUsage(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /** trackPlatformUsage under another name: the processor deducts tokens when it applies the record. */
  deductTokens(
    agentUsage: Readonly<Record<string, AgentUsageInput>>,
    options?: TrackOptions,
  ): Promise<UsageReceipt> {
    return this.usage(agentUsage, options);
  }

  /** A `finalize` record; returns the session's summary and its comparison with the workflow's averages. */
  finalizePlatformSession(options?: CostOptions): Promise<SessionResult> {
    return this.finalize(options);
  }

  /** The creator's platform account (MozaiksUsers) and the app's Enterprises document. */
  async loadEnterpriseData(): Promise<{
    enterprise: Record<string, unknown> | null;
    creator: AccountData | null;
  }> {
    const enterprise = await this.meter.enterprise(this.ids.enterprise_id);
    return { enterprise, creator: await this.loadAccount() };
  }
}

/**
 * An agent's analytics figure, checked by the record schema when it is given: kept unchecked until the
 * agent's next usage record, a bad value (NaN, a negative time, a string, an agent name the schema
 * refuses) would fail that record and every later one of the agent, with no way to clear it.
 */
function checkAgentFigure(
  agentName: string,
  field: "response_time_ms" | "message_count",
  value: unknown,
): void {
  const parsed = agentUsageMapSchema.safeParse({
    [agentName]: { prompt_tokens: 0, completion_tokens: 0, [field]: value },
  });
  if (!parsed.success)
    throw new RecordInvalidError(
      `${field} of agent ${JSON.stringify(agentName)} (${String(value)}): ${formatIssues(parsed.error.issues)}`,
      [`agent_usage.${agentName}.${field}`],
      parsed.error.issues,
    );
}
