import type { AccountIds, BudgetState, InputRecord } from "../../schemas/index.ts";
import { newAccount } from "./account.ts";
import type { BillingConfig } from "./billing-config.ts";
import { budgetStateOf } from "./budget-state.ts";

/**
 * The budget state of an account no record has touched yet: what its first record will find (its
 * level's allowance, nothing used or bought). Built by the same functions that create an account and
 * publish its state, so a runtime asking about a new account gets the answer the processor will give.
 */
export function freshBudgetState(ids: AccountIds, config: BillingConfig): BudgetState {
  // newAccount reads the ids of the record it is given and nothing else.
  return budgetStateOf(newAccount(ids as InputRecord, config));
}
