import { type ClickHouseClient, quoteIdent } from "../../../sinks/clickhouse/client.ts";
import { money } from "../money.ts";

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
  /** Voids and refunds of billed usage, dated when they happened, and what they gave back (positive). */
  adjustments: number;
  reversed_billed_micros: bigint;
  reversed_creator_share_micros: bigint;
  reversed_platform_fee_micros: bigint;
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
    adjustments: 0,
    reversed_billed_micros: 0n,
    reversed_creator_share_micros: 0n,
    reversed_platform_fee_micros: 0n,
  };
}

// schemas/api.ts STATEMENT_MONTHS keeps statement months inside this window.
const ALL_TIME = { from: "1970-01-01T00:00:00Z", to: "2299-12-31T00:00:00Z" };

/**
 * The creator's apps' end-user (app_usage) totals from the raw events, FINAL so that each record counts
 * once, within [from, to) by event time when a period is given; with the voids and refunds of billed
 * usage dated in the same period (the adjustments table; a correction counts in the month it happens,
 * whatever month the usage it corrects was in). Exact: statements pay from these.
 */
export async function creatorAppTotals(
  client: ClickHouseClient,
  database: string,
  mozaiksUserId: string,
  period: { from: string; to: string } = ALL_TIME,
): Promise<Map<string, AppTotals>> {
  const db = quoteIdent(database);
  const where = `level = 'app_usage' AND mozaiks_user_id = {creator:String}
              AND occurred_at >= parseDateTime64BestEffort({from:String}, 3, 'UTC')
              AND occurred_at < parseDateTime64BestEffort({to:String}, 3, 'UTC')`;
  const query_params = { creator: mozaiksUserId, from: period.from, to: period.to };
  const [usage, adjustments] = await Promise.all([
    client
      .query({
        query: `SELECT enterprise_id, count() AS records, countIf(billed_micros != 0) AS billed_records,
              sum(tokens_used) AS tokens,
              toString(sum(billed_micros)) AS billed, toString(sum(creator_share_micros)) AS creator,
              toString(sum(platform_fee_micros)) AS fee
            FROM ${db}.usage_events FINAL
            WHERE ${where}
            GROUP BY enterprise_id`,
        query_params,
        format: "JSONEachRow",
      })
      .then((result) =>
        result.json<{
          enterprise_id: string;
          records: string;
          billed_records: string;
          tokens: string;
          billed: string;
          creator: string;
          fee: string;
        }>(),
      ),
    // As the revenue ledgers count them (core/revenue-ledger.ts): corrections that moved money.
    client
      .query({
        query: `SELECT enterprise_id, count() AS adjustments,
              toString(-sum(billed_micros)) AS billed, toString(-sum(creator_share_micros)) AS creator,
              toString(-sum(platform_fee_micros)) AS fee
            FROM ${db}.adjustments FINAL
            WHERE ${where} AND billed_micros != 0
            GROUP BY enterprise_id`,
        query_params,
        format: "JSONEachRow",
      })
      .then((result) =>
        result.json<{
          enterprise_id: string;
          adjustments: string;
          billed: string;
          creator: string;
          fee: string;
        }>(),
      ),
  ]);
  const totals = new Map<string, AppTotals>();
  const of = (id: string) => {
    let app = totals.get(id);
    if (app === undefined) {
      app = zeroTotals(id);
      totals.set(id, app);
    }
    return app;
  };
  for (const row of usage) {
    const app = of(row.enterprise_id);
    app.records = Number(row.records);
    app.billed_records = Number(row.billed_records);
    app.tokens = Number(row.tokens);
    app.billed_micros = BigInt(row.billed);
    app.creator_share_micros = BigInt(row.creator);
    app.platform_fee_micros = BigInt(row.fee);
  }
  for (const row of adjustments) {
    const app = of(row.enterprise_id);
    app.adjustments = Number(row.adjustments);
    app.reversed_billed_micros = BigInt(row.billed);
    app.reversed_creator_share_micros = BigInt(row.creator);
    app.reversed_platform_fee_micros = BigInt(row.fee);
  }
  return new Map([...totals].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** The adjusted half of an app's figures in the API's money (schemas/api.ts, adjustedShape). */
export function adjustedFigures(app: AppTotals) {
  return {
    adjustments: app.adjustments,
    reversed_billed: money(app.reversed_billed_micros),
    reversed_creator_share: money(app.reversed_creator_share_micros),
    reversed_platform_fee: money(app.reversed_platform_fee_micros),
    net_billed: money(app.billed_micros - app.reversed_billed_micros),
    net_creator_share: money(app.creator_share_micros - app.reversed_creator_share_micros),
    net_platform_fee: money(app.platform_fee_micros - app.reversed_platform_fee_micros),
  };
}
