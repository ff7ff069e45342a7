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
 * `inPlace` applies them as the audit does (applyBatchInPlace on one state it keeps mutating). Otherwise
 * each state is deep-frozen before the next batch: applyBatch must never write what it shares with its
 * input (a chat it did not copy, a hold, a memo), which a write-behind flush may still be reading, and a
 * write to a frozen object throws here.
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
      state = deepFreeze(result.state);
      outputs.push(...result.outputs);
    }
    from = cut;
  }
  return { state, outputs };
}

/** Freezes every object and array reachable from `value`, and the values of its Maps. */
export function deepFreeze<T>(value: T): T {
  if (typeof value !== "object" || value === null || Object.isFrozen(value)) return value;
  if (value instanceof Map) {
    for (const item of value.values()) deepFreeze(item);
    return value;
  }
  Object.freeze(value);
  for (const item of Object.values(value)) deepFreeze(item);
  return value;
}
