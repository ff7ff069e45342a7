import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import {
  type AccountState,
  applyBatch,
  type BillingConfig,
  type BillingState,
  budgetStateOf,
  emptyState,
  workflowAveragesOf,
} from "../pipeline/core/index.ts";
import {
  type BudgetState,
  epochMs,
  type InputRecord,
  type Output,
  type SessionSummary,
  type TickRecord,
  tickRecordSchema,
} from "../schemas/index.ts";

/**
 * Mock mode: the processor's billing core, in-process, on an in-memory state.
 * Every record is applied the moment it is sent, with `applyBatch`, the same function the processor
 * calls, so an app developer's tests see the figures production would compute, with no server at all.
 */
export class MockLedger {
  private state: BillingState = emptyState();
  /** Every output of the core, in order (usage outcomes, budget events, session summaries, ...). */
  readonly outputs: Output[] = [];

  constructor(private readonly billing: BillingConfig) {}

  apply(record: InputRecord): Output[] {
    const result = applyBatch(this.state, [{ record, logTimeMs: this.logTimeOf(record) }], this.billing);
    this.state = result.state;
    const outputs = result.outputs.map(({ seq: _seq, ...output }) => output as Output);
    this.outputs.push(...outputs);
    return outputs;
  }

  /**
   * A tick at `occurredAt`: every account's holds whose expiry it passes expire, as the processor's
   * ticks expire them on an idle partition. Mock mode needs none otherwise (each record of an account
   * expires its own due holds), but a test may use it to let time pass.
   */
  tick(occurredAt: string, recordId = `tick-${Date.parse(occurredAt)}`): Output[] {
    const tick: TickRecord = tickRecordSchema.parse({
      type: "tick",
      record_id: recordId,
      partition: 0,
      occurred_at: occurredAt,
    });
    const result = applyBatch(this.state, [{ record: tick }], this.billing);
    this.state = result.state;
    // The only outputs of a tick without a log time are hold_expired events, which name their account.
    const outputs = result.outputs.map(({ seq: _seq, ...output }) => output as Output);
    this.outputs.push(...outputs);
    return outputs;
  }

  /**
   * The log time the broker would give the record (the producer's clock: Kafka's CreateTime), for the
   * bound on event times ahead of it: a record dated in the future is refused RECORD_TIME_SKEW here as the
   * processor refuses it, instead of being applied and making the account's later records too late. The
   * bound behind it is left out (the log time is never more than event_time.max_behind_seconds after the
   * record's time): tests replay records of past dates, which a live producer would not send.
   */
  private logTimeOf(record: InputRecord): number {
    const behindMs = this.billing.event_time.max_behind_seconds * 1000;
    return Math.min(Date.now(), epochMs(record.occurred_at) + behindMs);
  }

  account(accountKey: string): AccountState | null {
    return this.state.accounts[accountKey] ?? null;
  }

  accounts(): readonly AccountState[] {
    return Object.values(this.state.accounts);
  }

  budgetState(accountKey: string): BudgetState | null {
    const account = this.account(accountKey);
    return account === null ? null : budgetStateOf(account);
  }

  /** The `workflow_averages` view's figures, computed over the summaries this ledger produced. */
  workflowAverages(workflowName: string, enterpriseId: string): WorkflowAverages | null {
    const summaries = this.outputs.filter(
      (output): output is SessionSummary => output.kind === "session_summary",
    );
    return workflowAveragesOf(summaries, workflowName, enterpriseId);
  }
}
