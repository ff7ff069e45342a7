import { microsToDecimalString } from "../../schemas/index.ts";
import type { ComputeReport } from "./report.ts";

export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, column) =>
    Math.max(header.length, ...rows.map((row) => row[column]!.length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, column) => (column === 0 ? cell.padEnd(widths[column]!) : cell.padStart(widths[column]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), line(widths.map((width) => "-".repeat(width))), ...rows.map(line)].join("\n");
}

const money = microsToDecimalString;

/** The readable form of a compute report: accounts, creators, totals. Money in currency units. */
export function formatReportTable(report: ComputeReport): string {
  const accounts = renderTable(
    [
      "account",
      "trial left",
      "paid tokens",
      "tokens used",
      "cost",
      "billed",
      "creator",
      "platform",
      "paused chats",
    ],
    report.accounts.map((account) => [
      account.account_key,
      String(account.trial_remaining_tokens),
      String(account.paid_tokens),
      String(account.tokens_used),
      money(account.cost_micros),
      money(account.billed_micros),
      money(account.creator_share_micros),
      money(account.platform_fee_micros),
      account.paused_chats
        .map((chat) => `${chat.chat_id}(${chat.pause_reason ?? ""}${chat.can_resume ? ", resumable" : ""})`)
        .join(" ") || "-",
    ]),
  );
  const creators = renderTable(
    ["creator", "app earnings", "platform billed"],
    report.creators.map((creator) => [
      creator.mozaiks_user_id,
      money(creator.earnings_micros),
      money(creator.platform_billed_micros),
    ]),
  );
  const { totals, counts } = report;
  const outputs = Object.entries(counts.outputs)
    .map(([kind, count]) => `${kind}=${count}`)
    .join(" ");
  return [
    "Accounts",
    accounts,
    "",
    "Creators",
    creators,
    "",
    `Totals: tokens ${totals.tokens_used}, cost ${money(totals.cost_micros)}, billed ${money(totals.billed_micros)}, ` +
      `creators ${money(totals.creator_share_micros)}, platform ${money(totals.platform_fee_micros)}`,
    `Records: ${counts.records} of ${counts.lines} lines (${counts.malformed_lines} malformed); outputs: ${outputs || "none"}`,
    "",
  ].join("\n");
}
