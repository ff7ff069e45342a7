import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import {
  type AccountState,
  applyBatch,
  type BillingConfig,
  type BillingState,
  budgetStateOf,
  emptyState,
} from "../pipeline/core/index.ts";
import type { BudgetState, InputRecord, Output, SessionSummary } from "../schemas/index.ts";

/**
 * Mock mode (the seed's USE_MOCK_API): the processor's billing core, in-process, on an in-memory state.
 * Every record is applied the moment it is sent, with `applyBatch`, the same function the processor
 * calls, so an app developer's tests see the figures production would compute, with no server at all.
 */
export class MockLedger {
  private state: BillingState = emptyState();
  /** Every output of the core, in order (usage outcomes, budget events, session summaries, ...). */
  readonly outputs: Output[] = [];

  constructor(private readonly billing: BillingConfig) {}

  apply(record: InputRecord): Output[] {
    const result = applyBatch(this.state, [{ record }], this.billing);
    this.state = result.state;
    const outputs = result.outputs.map(({ seq: _seq, ...output }) => output as Output);
    this.outputs.push(...outputs);
    return outputs;
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
    const sessions = this.outputs.filter(
      (output): output is SessionSummary =>
        output.kind === "session_summary" &&
        output.workflow_name === workflowName &&
        output.enterprise_id === enterpriseId,
    );
    if (sessions.length === 0) return null;
    const sum = (pick: (summary: SessionSummary) => number): number =>
      sessions.reduce((total, summary) => total + pick(summary), 0);
    return {
      enterprise_id: enterpriseId,
      workflow_name: workflowName,
      session_count: sessions.length,
      total_cost_micros: sessions.reduce((total, summary) => total + summary.total_cost_micros, 0n),
      total_tokens: sum((summary) => summary.total_tokens),
      avg_session_duration_seconds: sum((summary) => summary.session_duration_seconds) / sessions.length,
      avg_agents_per_session: sum((summary) => summary.agents_used.length) / sessions.length,
    };
  }
}
