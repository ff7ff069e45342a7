import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import type { AccountState, BillingConfig, ChatBudget } from "../pipeline/core/index.ts";
import type { BudgetState, InputRecord, Level } from "../schemas/index.ts";
import type { Staleness } from "./budget-view.ts";
import type { HoldGrant, HoldRelease, HoldRequest } from "./holds.ts";
import type { PreparedRecord, RecordInput } from "./validate.ts";

/** The ids that name one account. */
export interface AccountIds {
  level: Level;
  enterprise_id: string;
  mozaiks_user_id: string;
  platform_user_id?: string | undefined;
}

/** Where a budget answer came from: the local view of the state topic, MongoDB (strict), or mock mode. */
export type BudgetSource = "view" | "mongo" | "mock";

/** The answer to "can this account (chat) continue?", with where it came from and how old it may be. */
export interface BudgetStatus {
  account_key: string;
  can_continue: boolean;
  /** Why not (`trial_exhausted`, `allowance_exhausted`, `insufficient_tokens`), or the chat's pause reason. */
  pause_reason: string | null;
  /** The asked chat, when a chat id was given: paused, and whether a resume would be honoured. */
  chat: ChatBudget | null;
  available_tokens: number;
  /** The state answered from; for an account never billed, the state a new account starts with. */
  state: BudgetState;
  source: BudgetSource;
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
  /** A `grant` naming any of these is a dated grant (docs/billing.md): burn order, start, expiry. */
  priority?: number;
  effective_at?: string;
  expires_at?: string;
  record_id?: string;
  occurred_at?: string;
}

/**
 * A correction of one usage record of the account (operator only, signed like credits): `void` cancels
 * it, `refund` returns `amount_micros` of what it billed. docs/billing.md, Corrections.
 */
export interface Correction extends AccountIds {
  target_record_id: string;
  record_id?: string;
  occurred_at?: string;
}
export interface Refund extends Correction {
  amount_micros: number | string;
}

/**
 * What a session manager needs from its connection: record preparation and sending, budget answers
 * and the read side. The connection (client.ts) implements it; the managers depend on this alone.
 */
export interface SessionClient {
  readonly billing: BillingConfig;
  readonly budgetMode: "view" | "strict" | "mock";
  /** Validates, fills `record_id` and serializes, once; the result is what sendPrepared sends. */
  prepare(input: RecordInput): PreparedRecord;
  sendPrepared(prepared: PreparedRecord): Promise<SentRecord>;
  topUp(topUp: TopUp): Promise<SentRecord>;
  /** Sends a hold record and resolves with its decision (docs/holds.md). */
  reserve(request: HoldRequest): Promise<HoldGrant>;
  /** Gives an open hold back unused (a `release` record). */
  release(release: HoldRelease): Promise<SentRecord>;
  budget(ids: AccountIds, chatId?: string): Promise<BudgetStatus>;
  waitForBudget(
    ids: AccountIds,
    test: (state: BudgetState) => boolean,
    timeoutMs?: number,
  ): Promise<BudgetState>;
  account(ids: AccountIds): Promise<AccountState | null>;
  enterprise(enterpriseId: string): Promise<Record<string, unknown> | null>;
  workflowAverages(workflowName: string, enterpriseId: string): Promise<WorkflowAverages | null>;
}
