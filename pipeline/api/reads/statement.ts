import type { StatementResponse } from "../../../schemas/api.ts";
import { readAppRevenue } from "../../../sinks/mongo/read.ts";
import { money } from "../money.ts";
import type { AppOwners } from "../ownership.ts";
import type { ReadStores } from "../stores.ts";
import { type AppTotals, adjustedFigures, creatorAppTotals, zeroTotals } from "./app-totals.ts";

/** [start, end) of a `YYYY-MM` month in UTC, as ISO instants. */
export function monthPeriod(month: string): { from: string; to: string } {
  const [year, mon] = month.split("-").map(Number) as [number, number];
  return { from: monthStart(year, mon - 1).toISOString(), to: monthStart(year, mon).toISOString() };
}

/** The first instant of a month (0-based; 12 is January of the next year), UTC. */
function monthStart(year: number, monthIndex: number): Date {
  // Not Date.UTC: it reads years 0-99 as 1900-1999.
  const date = new Date(0);
  date.setUTCFullYear(year, monthIndex, 1);
  return date;
}

function line(app: AppTotals) {
  return {
    records: app.billed_records,
    billed: money(app.billed_micros),
    creator_share: money(app.creator_share_micros),
    platform_fee: money(app.platform_fee_micros),
    ...adjustedFigures(app),
  };
}

/**
 * A creator's payout statement for a month (UTC, by event time: a record's month never depends on when
 * it was processed): per app, what its end users were billed, the creator's share and the platform's
 * fee, from ClickHouse's raw events, with the voids and refunds dated in the month (adjustments) and the
 * net. Then the reconciliation: the MongoDB revenue ledgers hold lifetime
 * totals per app, so they are compared with ClickHouse's lifetime totals of the same apps. A ledger is
 * the whole app's: an unpinned app may hold other creators' end users, and a pinned one their records
 * from before the pin. So an app's amounts go into the sums only when its ledger equals the creator's
 * own totals; one that differs is named in differing_apps and nothing of it is summed.
 */
export async function creatorStatement(
  stores: ReadStores,
  owners: AppOwners,
  mozaiksUserId: string,
  month: string,
): Promise<StatementResponse> {
  const period = monthPeriod(month);
  const [ids, monthTotals, lifetime] = await Promise.all([
    owners.appsOf(mozaiksUserId),
    creatorAppTotals(stores.clickhouse, stores.database, mozaiksUserId, period),
    creatorAppTotals(stores.clickhouse, stores.database, mozaiksUserId),
  ]);
  const apps = [...new Set([...ids, ...lifetime.keys()])].sort();
  const ledgers = await Promise.all(apps.map((id) => readAppRevenue(stores.layout, id)));

  const lines = [...monthTotals.values()].filter((app) => app.billed_records > 0 || app.adjustments > 0);
  const sum = zeroTotals("");
  for (const app of lines) {
    sum.billed_records += app.billed_records;
    sum.billed_micros += app.billed_micros;
    sum.creator_share_micros += app.creator_share_micros;
    sum.platform_fee_micros += app.platform_fee_micros;
    sum.adjustments += app.adjustments;
    sum.reversed_billed_micros += app.reversed_billed_micros;
    sum.reversed_creator_share_micros += app.reversed_creator_share_micros;
    sum.reversed_platform_fee_micros += app.reversed_platform_fee_micros;
  }

  const differing: string[] = [];
  let clickhouseBilled = 0n;
  let mongoBilled = 0n;
  let clickhouseRecords = 0;
  let mongoRecords = 0;
  apps.forEach((id, index) => {
    const ch = lifetime.get(id) ?? zeroTotals(id);
    const ledger = ledgers[index]!;
    const same =
      ch.billed_micros === ledger.billed_micros &&
      ch.creator_share_micros === ledger.creator_share_micros &&
      ch.platform_fee_micros === ledger.platform_fee_micros &&
      ch.billed_records === ledger.records &&
      ch.adjustments === ledger.adjustments &&
      ch.reversed_billed_micros === ledger.reversed_billed_micros &&
      ch.reversed_creator_share_micros === ledger.reversed_creator_share_micros &&
      ch.reversed_platform_fee_micros === ledger.reversed_platform_fee_micros;
    if (!same) {
      differing.push(id);
      return;
    }
    clickhouseBilled += ch.billed_micros;
    mongoBilled += ledger.billed_micros;
    clickhouseRecords += ch.billed_records;
    mongoRecords += ledger.records;
  });

  return {
    mozaiks_user_id: mozaiksUserId,
    month,
    period_start: period.from,
    period_end: period.to,
    lines: lines.map((app) => ({ enterprise_id: app.enterprise_id, ...line(app) })),
    total: line(sum),
    reconciliation: {
      agrees: differing.length === 0,
      clickhouse_billed: money(clickhouseBilled),
      mongodb_billed: money(mongoBilled),
      clickhouse_records: clickhouseRecords,
      mongodb_records: mongoRecords,
      differing_apps: differing,
    },
  };
}
