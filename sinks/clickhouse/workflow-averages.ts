import type { WorkflowAverages } from "../../pipeline/core/cost-thresholds.ts";
import { type WorkflowKey, workflowKeyOf } from "../../schemas/keys.ts";
import type { ClickHouseClient } from "./client.ts";
import { quoteIdent } from "./client.ts";

/**
 * One workflow's averages over its finished sessions (the `workflow_averages` view, which reads
 * session_summaries FINAL, so a replayed summary is never counted twice). null: no finished session.
 */
type AveragesRow = {
  enterprise_id: string;
  workflow_name: string;
  session_count: string;
  cost: string;
  tokens: string;
  avg_session_duration_seconds: number;
  avg_agents_per_session: number;
};

const SELECT = `SELECT enterprise_id, workflow_name, session_count,
    toString(sessions_cost_micros) AS cost, toString(sessions_tokens) AS tokens,
    avg_session_duration_seconds, avg_agents_per_session`;

function toAverages(row: AveragesRow): WorkflowAverages {
  return {
    enterprise_id: row.enterprise_id,
    workflow_name: row.workflow_name,
    session_count: Number(row.session_count),
    total_cost_micros: BigInt(row.cost),
    total_tokens: Number(row.tokens),
    avg_session_duration_seconds: Number(row.avg_session_duration_seconds),
    avg_agents_per_session: Number(row.avg_agents_per_session),
  };
}

export async function workflowAverages(
  client: ClickHouseClient,
  database: string,
  workflowName: string,
  enterpriseId: string,
): Promise<WorkflowAverages | null> {
  const result = await client.query({
    query: `${SELECT} FROM ${quoteIdent(database)}.workflow_averages
            WHERE enterprise_id = {enterprise:String} AND workflow_name = {workflow:String}`,
    query_params: { enterprise: enterpriseId, workflow: workflowName },
    format: "JSONEachRow",
  });
  const [row] = await result.json<AveragesRow>();
  return row === undefined ? null : toAverages(row);
}

/** Every workflow's averages by workflow key (one query for the processor's cache). */
export async function allWorkflowAverages(
  client: ClickHouseClient,
  database: string,
): Promise<Map<WorkflowKey, WorkflowAverages>> {
  const result = await client.query({
    query: `${SELECT} FROM ${quoteIdent(database)}.workflow_averages`,
    format: "JSONEachRow",
  });
  const rows = await result.json<AveragesRow>();
  return new Map(rows.map((row) => [workflowKeyOf(row.enterprise_id, row.workflow_name), toAverages(row)]));
}
