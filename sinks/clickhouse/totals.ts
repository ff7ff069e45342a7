import type { ClickHouseClient } from "./client.ts";
import { quoteIdent } from "./client.ts";

export interface LevelTotals {
  level: string;
  records: number;
  tokens: number;
  cost_micros: bigint;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
}

/**
 * Totals by billing level over the raw events. FINAL collapses any row a rare double insert left behind
 * (ReplacingMergeTree), so the figures are exact even before background merges.
 */
export async function totalsByLevel(
  client: ClickHouseClient,
  database: string,
  filter: { enterprisePrefix?: string } = {},
): Promise<LevelTotals[]> {
  const result = await client.query({
    query: `SELECT level, count() AS records, sum(tokens_used) AS tokens,
              toString(sum(cost_micros)) AS cost, toString(sum(billed_micros)) AS billed,
              toString(sum(creator_share_micros)) AS creator, toString(sum(platform_fee_micros)) AS fee
            FROM ${quoteIdent(database)}.usage_events FINAL
            WHERE startsWith(enterprise_id, {prefix:String})
            GROUP BY level ORDER BY level`,
    query_params: { prefix: filter.enterprisePrefix ?? "" },
    format: "JSONEachRow",
  });
  const rows = await result.json<{
    level: string;
    records: string;
    tokens: string;
    cost: string;
    billed: string;
    creator: string;
    fee: string;
  }>();
  return rows.map((row) => ({
    level: row.level,
    records: Number(row.records),
    tokens: Number(row.tokens),
    cost_micros: BigInt(row.cost),
    billed_micros: BigInt(row.billed),
    creator_share_micros: BigInt(row.creator),
    platform_fee_micros: BigInt(row.fee),
  }));
}
