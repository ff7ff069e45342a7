import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import type { AccountState } from "../pipeline/core/index.ts";
import type { BudgetState, HoldDecision } from "../schemas/index.ts";
import type { Staleness } from "./budget-view.ts";
import type { AccountIds, BudgetSource } from "./session-client.ts";
import type { PreparedRecord } from "./validate.ts";

/** A budget state as a backend holds it (null: it holds none for the account), and how fresh it is. */
export interface BudgetReading {
  state: BudgetState | null;
  staleness: Staleness;
}

/**
 * What a connection sends records through and reads budgets and account figures from. Two
 * implementations: Kafka (the input topic, the budget-state view or MongoDB, the stores' read side) and
 * the in-memory mock (the billing core applied in process).
 */
export interface MeterBackend {
  readonly budgetSource: BudgetSource;
  /** Resolves once the record is durable: acknowledged by the broker, or applied by the mock. */
  send(prepared: PreparedRecord): Promise<void>;
  /** Bytes as they are, unvalidated and unsigned: only a backend with a topic accepts them. */
  sendRaw(key: string, value: string, headers?: Record<string, string>): Promise<void>;
  /**
   * Sends a hold record and resolves with its decision. A decision that does not come within
   * `timeoutMs` is HOLD_TIMEOUT, never a grant.
   */
  reserve(prepared: PreparedRecord, timeoutMs: number): Promise<HoldDecision>;
  readBudget(ids: AccountIds): Promise<BudgetReading>;
  /**
   * The first state of the account that passes `test`, following states as they arrive; undefined
   * when this backend answers from a single read (the caller then checks once).
   */
  follow(
    accountKey: string,
    test: (state: BudgetState) => boolean,
    timeoutMs: number,
  ): Promise<BudgetState> | undefined;
  account(ids: AccountIds): Promise<AccountState | null>;
  enterprise(enterpriseId: string): Promise<Record<string, unknown> | null>;
  workflowAverages(workflowName: string, enterpriseId: string): Promise<WorkflowAverages | null>;
  stats(): { acked: number; viewStates: number; viewCaughtUp: boolean };
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A reading that is current by construction (mock mode, a database read). */
export function currentReading(state: BudgetState | null): BudgetReading {
  return {
    state,
    staleness: { caught_up: true, known: state !== null, age_ms: 0, as_of: state?.as_of ?? null },
  };
}
