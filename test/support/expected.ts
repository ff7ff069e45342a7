import { type Expected, Recomputer } from "../../pipeline/audit/recompute.ts";
import { type AccountState, applyBatch, type BillingConfig, emptyState } from "../../pipeline/core/index.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { accountKeyOf, decodeRecord } from "../../schemas/index.ts";

/** Test workloads may hold records above the processor's default size bound; none is refused for size here. */
const MAX_BYTES = 1 << 20;

/** What the billing core says the stores must hold after these records: the oracle of every integration test. */
export function expectedRun(
  records: readonly InputRecordJson[],
  billing: BillingConfig,
): ReturnType<typeof applyBatch> {
  const decoded = records.map((record) => {
    const result = decodeRecord(JSON.stringify(record), { maxBytes: MAX_BYTES });
    if (!result.ok) throw new Error(`test workload has an invalid record: ${result.reason}`);
    return { record: result.record };
  });
  return applyBatch(emptyState(), decoded, billing);
}

/**
 * The same oracle in the shape the audit diffs against (accounts, revenue ledgers, usage per app and
 * level), computed by the audit's own recomputer. The records carry no log time, as in expectedRun:
 * a test that wants the event-time bound applied produces records it expects to be refused separately.
 * Topic positions are unknown here, so every record is placed on partition -1: a difference is then
 * explained by all the records of its account, never by a watermark.
 */
export function expectedStores(records: readonly InputRecordJson[], billing: BillingConfig): Expected {
  const recomputer = new Recomputer(billing, MAX_BYTES);
  records.forEach((record, index) => {
    recomputer.add(-1, {
      offset: String(index),
      key: Buffer.from(accountKeyOf(record)),
      value: Buffer.from(JSON.stringify(record)),
    });
  });
  const expected = recomputer.finish();
  const skipped = expected.counts.messages - expected.counts.records;
  if (skipped > 0) throw new Error(`test workload has ${skipped} record(s) the processor would refuse`);
  return expected;
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
