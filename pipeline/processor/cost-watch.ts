import type { BudgetEvent, UsageOutcome } from "../../schemas/index.ts";
import { type WorkflowKey, workflowKeyOf } from "../../schemas/keys.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { allWorkflowAverages } from "../../sinks/clickhouse/workflow-averages.ts";
import { checkWorkflowCostThresholds, type WorkflowAverages } from "../core/cost-thresholds.ts";
import type { AccountState } from "../core/index.ts";
import { ownValue } from "../core/own.ts";
import type { Logger } from "../log.ts";

export interface CostWatchOptions {
  multiple: number;
  refreshMs: number;
}

/** How many flagged chats are remembered; the oldest are forgotten first. */
const MAX_FLAGGED = 100_000;

/**
 * The live side of check_workflow_cost_thresholds: after a batch, each chat that just had usage is
 * compared with its workflow's averages, read from ClickHouse at most once per `refreshMs` for all
 * workflows at once. A chat is flagged once per process; a restart may flag it once more (the event
 * is an alert, delivered at least once like the other budget events). Chat ids are unique only within an
 * account, so a chat is remembered by its account and id: another tenant's `chat-1` is its own chat. The
 * memory is bounded (a long-lived process sees every chat); a forgotten chat may be flagged once more,
 * which the at-least-once contract already allows.
 */
export class CostWatch {
  private averages = new Map<WorkflowKey, WorkflowAverages>();
  private fetchedAt = Number.NEGATIVE_INFINITY;
  private inFlight = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly flagged = new Set<string>();

  constructor(
    private readonly client: ClickHouseClient,
    private readonly database: string,
    private readonly options: CostWatchOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * Starts re-reading the averages if they are older than refreshMs, without waiting: an alert must never
   * hold up billing, and a slow or silent ClickHouse would. After the first call the averages are also
   * re-read on a timer, so they are current when usage arrives. A failure keeps the last ones read.
   */
  refresh(): void {
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.fetch(), this.options.refreshMs);
      this.timer.unref();
    }
    if (performance.now() - this.fetchedAt >= this.options.refreshMs) this.fetch();
  }

  private fetch(): void {
    if (this.inFlight) return;
    this.inFlight = true;
    allWorkflowAverages(this.client, this.database)
      .then((averages) => {
        this.averages = averages;
      })
      .catch((error: unknown) => {
        this.logger.warn(
          { err: error },
          "workflow averages unavailable; cost thresholds use the last ones read",
        );
      })
      .finally(() => {
        this.fetchedAt = performance.now();
        this.inFlight = false;
      });
  }

  close(): void {
    clearInterval(this.timer);
  }

  private flag(chatKey: string): void {
    this.flagged.add(chatKey);
    if (this.flagged.size <= MAX_FLAGGED) return;
    // A Set iterates in insertion order: the first key is the oldest flag.
    for (const oldest of this.flagged) {
      this.flagged.delete(oldest);
      break;
    }
  }

  /** Cost-threshold events for the chats these outcomes touched, given the accounts after the batch. */
  check(outcomes: readonly UsageOutcome[], accounts: ReadonlyMap<string, AccountState>): BudgetEvent[] {
    const events: BudgetEvent[] = [];
    const lastByChat = new Map<string, UsageOutcome>();
    for (const outcome of outcomes) lastByChat.set(`${outcome.account_key}\u0000${outcome.chat_id}`, outcome);
    for (const [chatKey, outcome] of lastByChat) {
      // A chat a batch both used and ended is gone from the state; its id may be any valid id,
      // `constructor` included, so only an own entry counts.
      const account = accounts.get(outcome.account_key);
      const chat = account === undefined ? undefined : ownValue(account.chats, outcome.chat_id);
      if (chat === undefined || this.flagged.has(chatKey)) continue;
      const averages = this.averages.get(workflowKeyOf(outcome.enterprise_id, outcome.workflow_name)) ?? null;
      const analysis = checkWorkflowCostThresholds({
        currentCostMicros: chat.cost_micros,
        currentTokens: chat.total_tokens,
        averages,
        multiple: this.options.multiple,
      });
      if (analysis.status !== "exceeded") continue;
      this.flag(chatKey);
      events.push({
        kind: "budget_event",
        event: "cost_threshold",
        schema_version: outcome.schema_version,
        record_id: outcome.record_id,
        account_key: outcome.account_key,
        level: outcome.level,
        enterprise_id: outcome.enterprise_id,
        mozaiks_user_id: outcome.mozaiks_user_id,
        platform_user_id: outcome.platform_user_id,
        occurred_at: outcome.occurred_at,
        chat_id: outcome.chat_id,
        session_id: outcome.session_id,
        workflow_name: outcome.workflow_name,
        current_cost_micros: chat.cost_micros,
        average_cost_micros: analysis.average_cost_micros ?? 0n,
        threshold_cost_micros: analysis.threshold_cost_micros ?? 0n,
        multiple_bp: analysis.multiple_bp,
        session_count: analysis.session_count,
      });
    }
    return events;
  }
}
