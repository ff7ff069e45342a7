import type { AccountResponse } from "../../../schemas/api.ts";
import type { AccountAddress } from "../../../sinks/mongo/accounts.ts";
import type { MongoLayout } from "../../../sinks/mongo/layout.ts";
import { readAccount } from "../../../sinks/mongo/read.ts";
import { budgetStateOf } from "../../core/index.ts";
import { money } from "../money.ts";

/** An account's figures and budget state, from its document (the processor's source of truth). */
export async function accountView(layout: MongoLayout, ids: AccountAddress): Promise<AccountResponse | null> {
  const account = await readAccount(layout, ids);
  if (account === null) return null;
  return {
    account_key: account.account_key,
    level: account.level,
    enterprise_id: account.enterprise_id,
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
    tokens_used: account.tokens_used,
    trial_used_tokens: account.trial_used_tokens,
    credited_tokens: account.credited_tokens,
    paid_used_tokens: account.paid_used_tokens,
    cost: money(BigInt(account.cost_micros)),
    billed: money(BigInt(account.billed_micros)),
    creator_share: money(BigInt(account.creator_share_micros)),
    platform_fee: money(BigInt(account.platform_fee_micros)),
    paid_amount: money(BigInt(account.paid_amount_micros)),
    in_overdraft: account.in_overdraft,
    budget: budgetStateOf(account),
  };
}
