import { isDeepStrictEqual } from "node:util";
import type { AccountResponse } from "../../../schemas/api.ts";
import type { AccountAddress } from "../../../sinks/mongo/accounts.ts";
import type { MongoLayout } from "../../../sinks/mongo/layout.ts";
import { readAccount } from "../../../sinks/mongo/read.ts";
import { type AccountState, budgetStateOf } from "../../core/index.ts";
import type { BudgetStates } from "../budgets.ts";
import { money } from "../money.ts";

/**
 * An account's figures from its document (MongoDB, the processor's source of truth), and its budget
 * state as agent runtimes see it: from the budget-state topic once the server's view of it has caught
 * up and holds the account, else derived from the document exactly as the processor derives what it
 * publishes. Within a flush the processor publishes states before it writes accounts, so the topic is
 * never behind the document it is compared with by more than the view's own lag.
 */
export async function accountView(
  layout: MongoLayout,
  budgets: BudgetStates,
  ids: AccountAddress,
): Promise<AccountResponse | null> {
  const account = await readAccount(layout, ids);
  return account === null ? null : accountResponse(account, budgets);
}

/** The answer for an account document and the view's state of it (see accountView). */
export function accountResponse(account: AccountState, budgets: Pick<BudgetStates, "get">): AccountResponse {
  const fromDocument = budgetStateOf(account);
  const { state: fromTopic, staleness } = budgets.get(account.account_key);
  const useTopic = fromTopic !== null && staleness.caught_up;
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
    budget: useTopic ? fromTopic : fromDocument,
    budget_source: useTopic ? "state_topic" : "mongodb",
    state_topic: {
      caught_up: staleness.caught_up,
      known: staleness.known,
      age_ms: staleness.age_ms,
      agrees_with_mongodb: fromTopic === null ? null : isDeepStrictEqual(fromTopic, fromDocument),
    },
  };
}
