import {
  type AccountState,
  applyBatch,
  type BillingConfig,
  type BillingState,
  emptyState,
} from "../../pipeline/core/index.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { decodeRecord } from "../../schemas/index.ts";

/** What the billing core says the stores must hold after these records: the oracle of every integration test. */
export function expectedRun(
  records: readonly InputRecordJson[],
  billing: BillingConfig,
): { state: BillingState; usageOutcomes: number } {
  const decoded = records.map((record) => {
    const result = decodeRecord(JSON.stringify(record), { maxBytes: 1 << 20 });
    if (!result.ok) throw new Error(`test workload has an invalid record: ${result.reason}`);
    return { record: result.record };
  });
  const { state, outputs } = applyBatch(emptyState(), decoded, billing);
  return { state, usageOutcomes: outputs.filter((output) => output.kind === "usage_outcome").length };
}

export function expectedState(records: readonly InputRecordJson[], billing: BillingConfig): BillingState {
  return expectedRun(records, billing).state;
}

/** The figures compared between the oracle and a store: balances, trial counter, earnings and fees. */
export function ledgerFigures(
  account: Pick<
    AccountState,
    | "trial_used_tokens"
    | "credited_tokens"
    | "paid_used_tokens"
    | "tokens_used"
    | "billed_micros"
    | "creator_share_micros"
    | "platform_fee_micros"
    | "cost_micros"
  >,
) {
  return {
    trial_used_tokens: account.trial_used_tokens,
    credited_tokens: account.credited_tokens,
    paid_used_tokens: account.paid_used_tokens,
    tokens_used: account.tokens_used,
    cost_micros: BigInt(account.cost_micros),
    billed_micros: BigInt(account.billed_micros),
    creator_share_micros: BigInt(account.creator_share_micros),
    platform_fee_micros: BigInt(account.platform_fee_micros),
  };
}
