import type { UsageOutcome } from "../../schemas/index.ts";

/**
 * Creator earnings and platform fees of one app, as accumulated by one input partition. Many partitions
 * bill the same app, so each keeps its own ledger (a single writer each, exact under watermarks); an
 * app's totals are the sum of its ledgers.
 */
export interface RevenueLedger {
  enterprise_id: string;
  mozaiks_user_id: string;
  partition: number;
  records: number;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
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
  };
}

/** Whether an outcome moves money between an app's creator and the platform (paid app usage only). */
export function earnsRevenue(outcome: UsageOutcome): outcome is UsageOutcome & { level: "app_usage" } {
  return outcome.level === "app_usage" && outcome.billed_micros !== 0n;
}

/** The ledger after one billed outcome: its amount and both shares, which sum to it (core/split.ts). */
export function addToLedger(ledger: RevenueLedger, outcome: UsageOutcome): RevenueLedger {
  return {
    ...ledger,
    records: ledger.records + 1,
    billed_micros: ledger.billed_micros + outcome.billed_micros,
    creator_share_micros: ledger.creator_share_micros + outcome.creator_share_micros,
    platform_fee_micros: ledger.platform_fee_micros + outcome.platform_fee_micros,
  };
}
