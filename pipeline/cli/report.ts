import type { Output } from "../../schemas/index.ts";
import { type AccountState, type BillingState, balanceSnapshot, budgetStateOf } from "../core/index.ts";

/** One account as `compute` prints it. */
export type AccountReport = ReturnType<typeof accountReport>;

function accountReport(account: AccountState) {
  const balance = balanceSnapshot(account);
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
    tokens_used: account.tokens_used,
    cost_micros: account.cost_micros,
    billed_micros: account.billed_micros,
    creator_share_micros: account.creator_share_micros,
    platform_fee_micros: account.platform_fee_micros,
    paid_amount_micros: account.paid_amount_micros,
    can_continue: balance.available_tokens > 0,
    open_chats: Object.keys(account.chats).length,
    paused_chats: budgetStateOf(account).paused_chats,
  };
}

/** Creator earnings: the creator share of app usage on accounts of the creator's apps. */
export type CreatorReport = {
  mozaiks_user_id: string;
  earnings_micros: bigint;
  platform_billed_micros: bigint;
};

function creatorReports(accounts: readonly AccountState[]): CreatorReport[] {
  const byCreator = new Map<string, CreatorReport>();
  for (const account of accounts) {
    const report = byCreator.get(account.mozaiks_user_id) ?? {
      mozaiks_user_id: account.mozaiks_user_id,
      earnings_micros: 0n,
      platform_billed_micros: 0n,
    };
    report.earnings_micros += account.creator_share_micros;
    if (account.level === "platform") report.platform_billed_micros += account.billed_micros;
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
  counts: { lines: number; records: number; malformed_lines: number; outputs: Record<string, number> };
  outputs: Output[];
};

export function buildReport(
  state: BillingState,
  outputs: readonly Output[],
  counts: { lines: number; records: number; malformed_lines: number },
): ComputeReport {
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
  const byKind: Record<string, number> = {};
  for (const output of outputs) byKind[output.kind] = (byKind[output.kind] ?? 0) + 1;
  return {
    accounts: accounts.map(accountReport),
    creators: creatorReports(accounts),
    totals,
    counts: { ...counts, outputs: byKind },
    outputs: [...outputs],
  };
}
