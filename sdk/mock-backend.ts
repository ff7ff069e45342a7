import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import type { AccountState, BillingConfig } from "../pipeline/core/index.ts";
import { AgentmeterError } from "../pipeline/errors.ts";
import { accountKeyOf, type HoldDecision } from "../schemas/index.ts";
import { type BudgetReading, currentReading, type MeterBackend } from "./backend.ts";
import { MockLedger } from "./mock-ledger.ts";
import type { AccountIds } from "./session-client.ts";
import type { PreparedRecord } from "./validate.ts";

/** Mock mode: no server; each record is applied by the billing core in process the moment it is sent. */
export class MockBackend implements MeterBackend {
  readonly budgetSource = "mock";
  readonly ledger: MockLedger;
  private closed = false;

  constructor(billing: BillingConfig) {
    this.ledger = new MockLedger(billing);
  }

  async send(prepared: PreparedRecord): Promise<void> {
    this.apply(prepared);
  }

  /** The core decides as the record is applied: the decision is among its outputs, at once (no wait). */
  async reserve(prepared: PreparedRecord, _timeoutMs: number): Promise<HoldDecision> {
    const outputs = this.apply(prepared);
    const decision = outputs.find(
      (output): output is HoldDecision =>
        output.kind === "hold_decision" && output.record_id === prepared.record.record_id,
    );
    if (decision !== undefined) return decision;
    // A record id applied before: the core ignores it (duplicate_ignored) and decides nothing again.
    throw new AgentmeterError(
      "HOLD_TIMEOUT",
      `no decision for hold record ${prepared.record.record_id}: the record id was applied before; reserve again with a new record id`,
    );
  }

  async sendRaw(): Promise<void> {
    throw new AgentmeterError("CONFIG_INVALID", "sendRaw needs Kafka; mock mode has no topic");
  }

  async readBudget(ids: AccountIds): Promise<BudgetReading> {
    return currentReading(this.ledger.budgetState(accountKeyOf(ids)));
  }

  /** Every record is applied when sent: there is nothing to wait for. */
  follow(): undefined {
    return undefined;
  }

  async account(ids: AccountIds): Promise<AccountState | null> {
    return this.ledger.account(accountKeyOf(ids));
  }

  /** Mock mode keeps no app documents. */
  async enterprise(): Promise<Record<string, unknown> | null> {
    return null;
  }

  async workflowAverages(workflowName: string, enterpriseId: string): Promise<WorkflowAverages | null> {
    return this.ledger.workflowAverages(workflowName, enterpriseId);
  }

  stats(): { acked: number; viewStates: number; viewCaughtUp: boolean } {
    return { acked: 0, viewStates: 0, viewCaughtUp: true };
  }

  async flush(): Promise<void> {}

  /** As the Kafka backend's: a closed meter refuses new sends (SDK_CLOSED), so a test sees what production would. */
  async close(): Promise<void> {
    this.closed = true;
  }

  private apply(prepared: PreparedRecord) {
    if (this.closed) throw new AgentmeterError("SDK_CLOSED", "the meter is closed");
    return this.ledger.apply(prepared.record);
  }
}
