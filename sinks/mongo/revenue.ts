import type { Collection, Document } from "mongodb";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";

/**
 * Creator earnings and platform fees of one app, as accumulated by one input partition. Many partitions
 * bill the same app, so each keeps its own ledger document (a single writer each, exact under
 * watermarks); an app's totals are the sum of its ledgers.
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

export function revenueDocRef(
  layout: MongoLayout,
  enterpriseId: string,
  topic: string,
  partition: number,
): { collection: Collection<Document>; id: string } {
  return {
    collection: layout.app(enterpriseId).collection(COLLECTIONS.app.revenue),
    id: `${topic}:${partition}`,
  };
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
