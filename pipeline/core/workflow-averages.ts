import type { SessionSummary } from "../../schemas/index.ts";
import type { WorkflowAverages } from "./cost-thresholds.ts";

/**
 * A workflow's averages over its finished sessions, from their summaries: the figures ClickHouse's
 * `workflow_averages` view computes over `session_summaries`, for a ledger held in memory. null: the
 * workflow has no finished session.
 */
export function workflowAveragesOf(
  summaries: readonly SessionSummary[],
  workflowName: string,
  enterpriseId: string,
): WorkflowAverages | null {
  let count = 0;
  let cost = 0n;
  let tokens = 0;
  let duration = 0;
  let agents = 0;
  for (const summary of summaries) {
    if (summary.workflow_name !== workflowName || summary.enterprise_id !== enterpriseId) continue;
    count++;
    cost += summary.total_cost_micros;
    tokens += summary.total_tokens;
    duration += summary.session_duration_seconds;
    agents += summary.agents_used.length;
  }
  if (count === 0) return null;
  return {
    enterprise_id: enterpriseId,
    workflow_name: workflowName,
    session_count: count,
    total_cost_micros: cost,
    total_tokens: tokens,
    avg_session_duration_seconds: duration / count,
    avg_agents_per_session: agents / count,
  };
}
