import { type ClickHouseClient, quoteIdent } from "../../../sinks/clickhouse/client.ts";

/** One app's end-user billing over a period, as ClickHouse holds it. */
export interface AppTotals {
  enterprise_id: string;
  /** Records that moved money (billed > 0), as the revenue ledgers count them. */
  billed_records: number;
  records: number;
  tokens: number;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
}

export function zeroTotals(enterpriseId: string): AppTotals {
  return {
    enterprise_id: enterpriseId,
    billed_records: 0,
    records: 0,
    tokens: 0,
    billed_micros: 0n,
    creator_share_micros: 0n,
    platform_fee_micros: 0n,
  };
}

/**
 * The creator's apps' end-user (app_usage) totals from the raw events, FINAL so that each record counts
 * once, within [from, to) by event time when a period is given. Exact: statements pay from these.
 */
export async function creatorAppTotals(
  client: ClickHouseClient,
  database: string,
  mozaiksUserId: string,
  period?: { from: string; to: string },
): Promise<Map<string, AppTotals>> {
  const result = await client.query({
    query: `SELECT enterprise_id, count() AS records, countIf(billed_micros != 0) AS billed_records,
              sum(tokens_used) AS tokens,
              toString(sum(billed_micros)) AS billed, toString(sum(creator_share_micros)) AS creator,
              toString(sum(platform_fee_micros)) AS fee
            FROM ${quoteIdent(database)}.usage_events FINAL
            WHERE level = 'app_usage' AND mozaiks_user_id = {creator:String}
              AND occurred_at >= parseDateTime64BestEffort({from:String}, 3, 'UTC')
              AND occurred_at < parseDateTime64BestEffort({to:String}, 3, 'UTC')
            GROUP BY enterprise_id
            ORDER BY enterprise_id`,
    query_params: {
      creator: mozaiksUserId,
      from: period?.from ?? "1970-01-01T00:00:00Z",
      to: period?.to ?? "2299-12-31T00:00:00Z",
    },
    format: "JSONEachRow",
  });
  const rows = await result.json<{
    enterprise_id: string;
    records: string;
    billed_records: string;
    tokens: string;
    billed: string;
    creator: string;
    fee: string;
  }>();
  return new Map(
    rows.map((row) => [
      row.enterprise_id,
      {
        enterprise_id: row.enterprise_id,
        records: Number(row.records),
        billed_records: Number(row.billed_records),
        tokens: Number(row.tokens),
        billed_micros: BigInt(row.billed),
        creator_share_micros: BigInt(row.creator),
        platform_fee_micros: BigInt(row.fee),
      },
    ]),
  );
}
