import { type CreditRecord, epochMs, type Output } from "../../schemas/index.ts";
import { type AccountState, balanceSnapshot, canContinue } from "./account.ts";
import type { BillingConfig } from "./billing-config.ts";
import { overdraftEvents, resumableEvents, thresholdEvents } from "./budget.ts";
import { addGrant, advanceGrants, isGrant } from "./grants.ts";
import { type OutputBase, outputBase } from "./output-base.ts";

/**
 * Top-ups add paid tokens, grants a bucket of free ones (grants.ts); budget_set replaces the allowance. Afterwards thresholds are
 * re-armed and, if the account can continue again, its paused chats become resumable. Mutates.
 */
export function applyCredit(
  account: AccountState,
  record: CreditRecord,
  config: BillingConfig,
  outputs: Output[],
  base: OutputBase = outputBase(record),
  eventMs: number = epochMs(record.occurred_at),
): void {
  const couldContinue = canContinue(account);
  if (isGrant(record)) {
    addGrant(account, record, eventMs);
  } else if (record.kind === "budget_set") {
    account.allowance_tokens = record.tokens;
  } else {
    account.credited_tokens += record.tokens;
  }
  // Money paid comes with top-ups only: an amount on a grant or budget_set is carried on its output, not
  // counted as paid.
  if (record.kind === "top_up") account.paid_amount_micros += record.amount_micros ?? 0n;
  // A dated grant already past its expiry when it arrives (a late record) ends at once, forfeited: its
  // credit_applied comes first but shows the balance after that, so it never announces tokens that
  // cannot be spent.
  const at = outputs.length;
  if (account.grants !== undefined) advanceGrants(account, eventMs, record, outputs);
  outputs.splice(at, 0, {
    kind: "credit_applied",
    ...base,
    credit_kind: record.kind,
    tokens: record.tokens,
    amount_micros: record.amount_micros ?? null,
    balance_after: balanceSnapshot(account),
    can_continue: canContinue(account),
  });
  outputs.push(
    ...thresholdEvents(account, config, base),
    ...overdraftEvents(account, base),
    ...resumableEvents(account, base, couldContinue),
  );
}
