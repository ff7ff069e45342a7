import type { Adjustment, UsageOutcome } from "../../schemas/index.ts";

/**
 * Creator earnings and platform fees of one app, as accumulated by one input partition. Many partitions
 * bill the same app, so each keeps its own ledger (a single writer each, exact under watermarks); an
 * app's totals are the sum of its ledgers.
 */
export interface RevenueLedger {
  enterprise_id: string;
  mozaiks_user_id: string;
  partition: number;
  /** Billed usage records; the three sums below are theirs (gross, as ClickHouse's usage rows hold them). */
  records: number;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
  /**
   * Voids and refunds of billed usage (core/corrections.ts) and what they gave back, as positive amounts
   * (reversed creator share + reversed platform fee = reversed billed, as for every split). What the
   * creator has earned is creator_share_micros - reversed_creator_share_micros. Absent on a ledger written
   * before corrections reached ledgers (stop 23): read as 0.
   */
  adjustments?: number;
  reversed_billed_micros?: bigint;
  reversed_creator_share_micros?: bigint;
  reversed_platform_fee_micros?: bigint;
}

export function emptyLedger(enterpriseId: string, mozaiksUserId: string, partition: number): RevenueLedger {
  return {
    enterprise_id: enterpriseId,
    mozaiks_user_id: mozaiksUserId,
    partition,
    records: 0,
    billed_micros: 0n,
    creator_share_micros: 0n,
    platform_fee_micros: 0n,
    adjustments: 0,
    reversed_billed_micros: 0n,
    reversed_creator_share_micros: 0n,
    reversed_platform_fee_micros: 0n,
  };
}

/** What moves money between an app's creator and the platform: a billed outcome, or a correction of one. */
export type LedgerEntry = UsageOutcome | Adjustment;

/** Whether an entry moves money between an app's creator and the platform (paid app usage only). */
export function earnsRevenue(entry: LedgerEntry): boolean {
  return entry.level === "app_usage" && entry.billed_micros !== 0n;
}

/** What one entry adds to an app's ledger, every figure as a bigint. */
export interface LedgerDelta {
  records: bigint;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
  adjustments: bigint;
  reversed_billed_micros: bigint;
  reversed_creator_share_micros: bigint;
  reversed_platform_fee_micros: bigint;
}

/**
 * A billed outcome adds its amount and both shares, which sum to it (core/split.ts); a void or refund
 * carries them negative (core/corrections.ts) and adds them, positive, to what was reversed.
 */
export function ledgerDelta(entry: LedgerEntry): LedgerDelta {
  const usage = entry.kind === "usage_outcome";
  return {
    records: usage ? 1n : 0n,
    billed_micros: usage ? entry.billed_micros : 0n,
    creator_share_micros: usage ? entry.creator_share_micros : 0n,
    platform_fee_micros: usage ? entry.platform_fee_micros : 0n,
    adjustments: usage ? 0n : 1n,
    reversed_billed_micros: usage ? 0n : -entry.billed_micros,
    reversed_creator_share_micros: usage ? 0n : -entry.creator_share_micros,
    reversed_platform_fee_micros: usage ? 0n : -entry.platform_fee_micros,
  };
}

export function addToLedger(ledger: RevenueLedger, entry: LedgerEntry): RevenueLedger {
  const delta = ledgerDelta(entry);
  return {
    ...ledger,
    records: ledger.records + Number(delta.records),
    billed_micros: ledger.billed_micros + delta.billed_micros,
    creator_share_micros: ledger.creator_share_micros + delta.creator_share_micros,
    platform_fee_micros: ledger.platform_fee_micros + delta.platform_fee_micros,
    adjustments: (ledger.adjustments ?? 0) + Number(delta.adjustments),
    reversed_billed_micros: (ledger.reversed_billed_micros ?? 0n) + delta.reversed_billed_micros,
    reversed_creator_share_micros:
      (ledger.reversed_creator_share_micros ?? 0n) + delta.reversed_creator_share_micros,
    reversed_platform_fee_micros:
      (ledger.reversed_platform_fee_micros ?? 0n) + delta.reversed_platform_fee_micros,
  };
}
