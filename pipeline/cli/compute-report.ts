import { microsToDecimalString } from "../../schemas/index.ts";
import { type AccountState, type BillingState, balanceSnapshot, budgetStateOf } from "../core/index.ts";
import { renderTable } from "../text-table.ts";

/** One account as `compute` prints it. */
export type AccountReport = ReturnType<typeof accountReport>;

/** Voids and refunds of an account, when it had any (the figures above them stay gross). */
export type AdjustmentsReport = {
  voided_tokens: number;
  voided_cost_micros: bigint;
  refunded_micros: bigint;
  reversed_billed_micros: bigint;
  reversed_creator_share_micros: bigint;
  reversed_platform_fee_micros: bigint;
};

function adjustmentsOf(account: AccountState): AdjustmentsReport | undefined {
  const c = account.corrections;
  if (
    c === undefined ||
    (c.voided_tokens === 0 && c.reversed_billed_micros === 0n && c.voided_cost_micros === 0n)
  )
    return undefined;
  return {
    voided_tokens: c.voided_tokens,
    voided_cost_micros: c.voided_cost_micros,
    refunded_micros: c.refunded_micros,
    reversed_billed_micros: c.reversed_billed_micros,
    reversed_creator_share_micros: c.reversed_creator_share_micros,
    reversed_platform_fee_micros: c.reversed_platform_fee_micros,
  };
}

function accountReport(account: AccountState) {
  const balance = balanceSnapshot(account);
  const adjustments = adjustmentsOf(account);
  return {
    account_key: account.account_key,
    level: account.level,
    enterprise_id: account.enterprise_id,
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
    allowance_tokens: balance.allowance_tokens,
    trial_used_tokens: balance.trial_used_tokens,
    trial_remaining_tokens: balance.trial_remaining_tokens,
    credited_tokens: account.credited_tokens,
    paid_used_tokens: account.paid_used_tokens,
    paid_tokens: balance.paid_tokens,
    // What can still be spent (allowance left + paid + grant tokens): the figure can_continue is decided on.
    available_tokens: balance.available_tokens,
    ...(balance.grant_tokens === undefined ? {} : { grant_tokens: balance.grant_tokens }),
    tokens_used: account.tokens_used,
    cost_micros: account.cost_micros,
    billed_micros: account.billed_micros,
    creator_share_micros: account.creator_share_micros,
    platform_fee_micros: account.platform_fee_micros,
    paid_amount_micros: account.paid_amount_micros,
    can_continue: balance.available_tokens > 0,
    open_chats: Object.keys(account.chats).length,
    paused_chats: budgetStateOf(account).paused_chats,
    ...(adjustments === undefined ? {} : { adjustments }),
  };
}

/**
 * Creator earnings: the creator share of app usage on accounts of the creator's apps, and what the
 * creator was billed for its own platform usage; gross as the usage records made them, and net of the
 * voids and refunds (the creator's earnings fall with every correction of its apps' usage).
 */
export type CreatorReport = {
  mozaiks_user_id: string;
  earnings_micros: bigint;
  platform_billed_micros: bigint;
  net_earnings_micros: bigint;
  net_platform_billed_micros: bigint;
};

function creatorReports(accounts: readonly AccountState[]): CreatorReport[] {
  const byCreator = new Map<string, CreatorReport>();
  for (const account of accounts) {
    const report = byCreator.get(account.mozaiks_user_id) ?? {
      mozaiks_user_id: account.mozaiks_user_id,
      earnings_micros: 0n,
      platform_billed_micros: 0n,
      net_earnings_micros: 0n,
      net_platform_billed_micros: 0n,
    };
    const reversed = account.corrections;
    report.earnings_micros += account.creator_share_micros;
    report.net_earnings_micros +=
      account.creator_share_micros - (reversed?.reversed_creator_share_micros ?? 0n);
    if (account.level === "platform") {
      report.platform_billed_micros += account.billed_micros;
      report.net_platform_billed_micros += account.billed_micros - (reversed?.reversed_billed_micros ?? 0n);
    }
    byCreator.set(account.mozaiks_user_id, report);
  }
  return [...byCreator.values()].sort((a, b) => (a.mozaiks_user_id < b.mozaiks_user_id ? -1 : 1));
}

export type ComputeReport = {
  accounts: AccountReport[];
  creators: CreatorReport[];
  totals: {
    tokens_used: number;
    cost_micros: bigint;
    billed_micros: bigint;
    creator_share_micros: bigint;
    platform_fee_micros: bigint;
  };
  counts: ComputeCounts;
};

/** What `compute` counted while streaming; outputs by kind (`rejected`, `duplicate_ignored`, ...). */
export type ComputeCounts = {
  lines: number;
  records: number;
  malformed_lines: number;
  rejected_records: number;
  outputs: Record<string, number>;
};

/** The report on the final state. The outputs themselves are streamed by `compute`, not kept here. */
export function buildComputeReport(state: BillingState, counts: ComputeCounts): ComputeReport {
  const accounts = Object.keys(state.accounts)
    .sort()
    .map((key) => state.accounts[key]!);
  const totals = {
    tokens_used: 0,
    cost_micros: 0n,
    billed_micros: 0n,
    creator_share_micros: 0n,
    platform_fee_micros: 0n,
  };
  for (const account of accounts) {
    totals.tokens_used += account.tokens_used;
    totals.cost_micros += account.cost_micros;
    totals.billed_micros += account.billed_micros;
    totals.creator_share_micros += account.creator_share_micros;
    totals.platform_fee_micros += account.platform_fee_micros;
  }
  return {
    accounts: accounts.map(accountReport),
    creators: creatorReports(accounts),
    totals,
    counts,
  };
}

const money = microsToDecimalString;

/** The readable form of a compute report: accounts, creators, totals. Money in currency units. */
export function formatComputeTable(report: ComputeReport): string {
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
  // Shown only when some account was corrected, so a report without corrections reads as it always did.
  const adjusted = report.accounts.filter((account) => account.adjustments !== undefined);
  const adjustments: string[] = [];
  if (adjusted.length > 0) {
    const net = {
      billed: totals.billed_micros,
      creator: totals.creator_share_micros,
      platform: totals.platform_fee_micros,
    };
    const rows = adjusted.map((account) => {
      const a = account.adjustments!;
      net.billed -= a.reversed_billed_micros;
      net.creator -= a.reversed_creator_share_micros;
      net.platform -= a.reversed_platform_fee_micros;
      return [
        account.account_key,
        String(a.voided_tokens),
        money(a.voided_cost_micros),
        money(a.refunded_micros),
        money(a.reversed_billed_micros),
        money(a.reversed_creator_share_micros),
        money(a.reversed_platform_fee_micros),
      ];
    });
    adjustments.push(
      "Adjustments (voids and refunds, reversed from the gross figures above)",
      renderTable(
        [
          "account",
          "voided tokens",
          "voided cost",
          "refunded",
          "billed reversed",
          "creator reversed",
          "platform reversed",
        ],
        rows,
      ),
      "",
      "Creators, net of the adjustments",
      renderTable(
        ["creator", "app earnings", "platform billed"],
        report.creators.map((creator) => [
          creator.mozaiks_user_id,
          money(creator.net_earnings_micros),
          money(creator.net_platform_billed_micros),
        ]),
      ),
      "",
      `Net: billed ${money(net.billed)}, creators ${money(net.creator)}, platform ${money(net.platform)}`,
      "",
    );
  }
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
    ...(adjustments.length > 0 ? ["", ...adjustments.slice(0, -1)] : []),
    `Records: ${counts.records} of ${counts.lines} lines (${counts.malformed_lines} malformed); outputs: ${outputs || "none"}`,
    "",
  ].join("\n");
}
