import {
  applyBatch,
  applyBatchInPlace,
  type BillingConfig,
  type BillingState,
  emptyState,
} from "../../pipeline/core/index.ts";
import type { TopicOutput, TopicRecord } from "../../schemas/index.ts";

/**
 * The records applied in batches cut at `cuts` (any order, out-of-range cuts ignored), one applyBatch
 * per batch as the processor calls it: for the property that where a stream is cut changes nothing.
 * `inPlace` applies them as the audit does (applyBatchInPlace on one state it keeps mutating).
 */
export function applyInCuts(
  records: readonly TopicRecord[],
  cuts: readonly number[],
  config: BillingConfig,
  inPlace = false,
): { state: BillingState; outputs: TopicOutput[] } {
  let state: BillingState = emptyState();
  const outputs: TopicOutput[] = [];
  let from = 0;
  for (const cut of [
    ...cuts.filter((c) => c > 0 && c < records.length).sort((a, b) => a - b),
    records.length,
  ]) {
    const batch = records.slice(from, cut).map((record) => ({ record }));
    if (inPlace) {
      outputs.push(...applyBatchInPlace(state, batch, config));
    } else {
      const result = applyBatch(state, batch, config);
      state = result.state;
      outputs.push(...result.outputs);
    }
    from = cut;
  }
  return { state, outputs };
}
