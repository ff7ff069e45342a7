import type { FlushPlan } from "./plan.ts";

/** What one processor has made durable since it started (logged at stop; tests and benches read it). */
export interface ProcessorTotals {
  consumed: number;
  applied: number;
  deadLettered: number;
  duplicates: number;
  replayedSkipped: number;
  flushes: number;
  accountWrites: number;
  ledgerWrites: number;
  projectionWrites: number;
  /** Records dead-lettered because a store refused their effect (RECORD_STORE_REJECTED). */
  storeRejected: number;
  /** Records dead-lettered because the billing core failed on them (RECORD_APPLY_FAILED: a bug). */
  applyFailed: number;
  /** Dedupe ids forgotten inside the horizon for the per-account cap. */
  dedupeForgotten: number;
}

export function zeroTotals(): ProcessorTotals {
  return {
    consumed: 0,
    applied: 0,
    deadLettered: 0,
    duplicates: 0,
    replayedSkipped: 0,
    flushes: 0,
    accountWrites: 0,
    ledgerWrites: 0,
    projectionWrites: 0,
    storeRejected: 0,
    applyFailed: 0,
    dedupeForgotten: 0,
  };
}

/** Adds a durable plan (or write-behind cycle). */
export function countDurable(totals: ProcessorTotals, plan: FlushPlan): void {
  const { stats } = plan;
  totals.consumed += stats.consumed;
  totals.applied += stats.applied;
  totals.replayedSkipped += stats.replayedSkipped;
  totals.duplicates += stats.duplicates;
  totals.dedupeForgotten += stats.dedupeForgotten;
  totals.deadLettered += stats.deadLettered;
  totals.flushes += 1;
  totals.accountWrites += plan.accountWrites.length;
  totals.ledgerWrites += plan.ledgerWrites.length;
  totals.projectionWrites += plan.projections.length;
}
