import type { TopAgent, TopAgentsQuery } from "../../../schemas/api.ts";
import { type ClickHouseClient, quoteIdent } from "../../../sinks/clickhouse/client.ts";
import { money } from "../money.ts";
import { averageOf } from "./usage.ts";

/**
 * Whose events: one app's (only one creator's records of it, with `creator`: creatorScopeOf), or every
 * app's records that name one creator (as statements count them).
 */
export type AgentScope = { enterprise_id: string; creator: string | null } | { mozaiks_user_id: string };

/** ORDER BY of each ranking, over the aliases below; ties by agent name. */
const ORDERS: Record<TopAgentsQuery["by"], string> = {
  cost: "cost_n DESC",
  billed: "billed_n DESC",
  tokens: "tokens DESC",
  response_time: "avg_ms DESC NULLS LAST",
};

/**
 * One record's amount split over its agents by their tokens, every class counted (prompt, completion,
 * cached, reasoning, audio: together the record's tokens_used): each gets the floor of amount x its
 * tokens / all tokens, and the agent with the most tokens (the first by name on a tie) the remainder,
 * so the parts sum exactly to the record's amount. A record whose agents report no tokens splits evenly.
 */
function parts(amount: string, alias: string): string {
  return `arrayMap(x -> intDiv(toInt128(${amount}) * x, arraySum(w)), w) AS ${alias}_floor,
    arrayMap((s, i) -> s + if(i = largest, toInt128(${amount}) - arraySum(${alias}_floor), toInt128(0)),
             ${alias}_floor, arrayEnumerate(w)) AS ${alias}_parts`;
}

interface Row {
  agent: string;
  records: string;
  tokens: string;
  prompt: string;
  completion: string;
  cost: string;
  billed: string;
  timed: string;
  avg_ms: number | string | null;
  p95_ms: number | string | null;
}

/**
 * The top agents of an app (or of a creator's records) over [from, to) by event time, from the raw
 * events FINAL (exact: each record once). The agent rollups hold no money, so cost and billed amount
 * are attributed here, per record, by token share (parts above). Values are bound parameters; only the
 * ORDER BY and the scope's column are chosen, from closed lists.
 */
export async function topAgents(
  client: ClickHouseClient,
  database: string,
  scope: AgentScope,
  query: TopAgentsQuery,
): Promise<TopAgent[]> {
  const [column, id] =
    "enterprise_id" in scope
      ? ["enterprise_id", scope.enterprise_id]
      : ["mozaiks_user_id", scope.mozaiks_user_id];
  const creator = "creator" in scope ? (scope.creator ?? undefined) : undefined;
  const result = await client.query({
    query: `SELECT agent, count() AS records, sum(tw) AS tokens, sum(p) AS prompt, sum(c) AS completion,
              sum(cost_part) AS cost_n, sum(billed_part) AS billed_n,
              toString(cost_n) AS cost, toString(billed_n) AS billed,
              count(rt) AS timed,
              if(timed = 0, NULL, sum(ifNull(rt, 0)) / nullIf(sum(m), 0)) AS avg_ms,
              quantileExact(0.95)(rt) AS p95_ms
            FROM (
              SELECT agent_names, agent_prompt_tokens, agent_completion_tokens, agent_response_time_ms,
                agent_message_count,
                arrayMap((p, c, k, r, a) -> toInt128(p) + toInt128(c) + toInt128(k) + toInt128(r) + toInt128(a),
                  agent_prompt_tokens, agent_completion_tokens,
                  arrayResize(agent_cached_prompt_tokens, length(agent_names)),
                  arrayResize(agent_reasoning_tokens, length(agent_names)),
                  arrayResize(agent_audio_tokens, length(agent_names))) AS raw_w,
                if(arraySum(raw_w) = 0, arrayMap(x -> toInt128(1), raw_w), raw_w) AS w,
                indexOf(w, arrayMax(w)) AS largest,
                ${parts("cost_micros", "cost")},
                ${parts("billed_micros", "billed")}
              FROM ${quoteIdent(database)}.usage_events FINAL
              WHERE ${column} = {id:String} AND level = {level:String}
                ${creator === undefined ? "" : "AND mozaiks_user_id = {creator:String}"}
                AND occurred_at >= parseDateTime64BestEffort({from:String}, 3, 'UTC')
                AND occurred_at < parseDateTime64BestEffort({to:String}, 3, 'UTC')
            )
            ARRAY JOIN agent_names AS agent, agent_prompt_tokens AS p, agent_completion_tokens AS c,
              raw_w AS tw, agent_response_time_ms AS rt, agent_message_count AS m,
              cost_parts AS cost_part, billed_parts AS billed_part
            GROUP BY agent
            ORDER BY ${ORDERS[query.by]}, agent
            LIMIT {limit:UInt32}`,
    query_params: {
      id,
      level: query.level,
      from: query.from,
      to: query.to,
      limit: query.limit,
      ...(creator === undefined ? {} : { creator }),
    },
    format: "JSONEachRow",
  });
  const rows = await result.json<Row>();
  return rows.map((row) => ({
    agent: row.agent,
    records: Number(row.records),
    tokens: Number(row.tokens),
    prompt_tokens: Number(row.prompt),
    completion_tokens: Number(row.completion),
    cost: money(BigInt(row.cost)),
    billed: money(BigInt(row.billed)),
    timed_records: Number(row.timed),
    avg_response_ms: averageOf(row.avg_ms),
    p95_response_ms: averageOf(row.p95_ms),
  }));
}
