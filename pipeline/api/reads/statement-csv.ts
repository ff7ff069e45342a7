import type { StatementResponse } from "../../../schemas/api.ts";

/**
 * The statement as CSV for finance's spreadsheets: one row per app (gross, the month's voids and refunds,
 * net), a total row and a reconciliation row; amounts in currency units with six decimals, exactly as the JSON's `usd`. Ids pass the id rules
 * (no comma, quote or newline), so no field needs quoting.
 */
export function statementCsv(statement: StatementResponse): string {
  const header =
    "mozaiks_user_id,month,enterprise_id,records,billed_usd,creator_share_usd,platform_fee_usd," +
    "adjustments,reversed_billed_usd,reversed_creator_share_usd,reversed_platform_fee_usd," +
    "net_billed_usd,net_creator_share_usd,net_platform_fee_usd";
  const row = (app: string, l: StatementResponse["total"]) =>
    [
      statement.mozaiks_user_id,
      statement.month,
      app,
      l.records,
      l.billed.usd,
      l.creator_share.usd,
      l.platform_fee.usd,
      l.adjustments,
      l.reversed_billed.usd,
      l.reversed_creator_share.usd,
      l.reversed_platform_fee.usd,
      l.net_billed.usd,
      l.net_creator_share.usd,
      l.net_platform_fee.usd,
    ].join(",");
  const r = statement.reconciliation;
  return [
    header,
    ...statement.lines.map((l) => row(l.enterprise_id, l)),
    row("TOTAL", statement.total),
    `# reconciliation: ${r.agrees ? "agrees" : "DIFFERS"}; clickhouse billed ${r.clickhouse_billed.usd} in ${r.clickhouse_records} records, mongodb ledgers ${r.mongodb_billed.usd} in ${r.mongodb_records} records${r.differing_apps.length > 0 ? `; differing apps: ${r.differing_apps.join(" ")}` : ""}`,
    "",
  ].join("\n");
}
