import type { BillingConfig } from "../../pipeline/core/index.ts";

/** The model whose price has the bug. */
export const BUGGY_MODEL = "boom";

/**
 * `base` with one more model, BUGGY_MODEL, whose prompt price throws while `failing.on`: a bug in the
 * billing core on valid records, and only on the records that use that model. Setting `failing.on` to
 * false is the fix being deployed.
 */
export function billingWithBug(base: BillingConfig, failing: { on: boolean }): BillingConfig {
  const entry = {
    price_id: "boom-2020",
    model: BUGGY_MODEL,
    effective_from: "2020-01-01T00:00:00Z",
    completion_micros_per_mtok: 2_000_000,
    get prompt_micros_per_mtok(): number {
      if (failing.on) throw new TypeError("injected: pricing failed");
      return 1_000_000;
    },
  };
  return { ...base, price_book: { entries: [...base.price_book.entries, entry] } } as BillingConfig;
}
