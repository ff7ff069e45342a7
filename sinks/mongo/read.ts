import type { Document } from "mongodb";
import type { AccountState } from "../../pipeline/core/index.ts";
import { AgentmeterError } from "../../pipeline/errors.ts";
import { fromStoredAccount } from "./account-codec.ts";
import { type AccountAddress, accountDocRef } from "./accounts.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";
import type { RevenueLedger } from "./revenue.ts";

/** Read side of the account documents, for the demo, tests and the audit (never used by the processor's writes). */
export async function readAccount(
  layout: MongoLayout,
  address: AccountAddress,
): Promise<(AccountState & Document) | null> {
  const ref = accountDocRef(layout, address);
  const doc = await ref.collection.findOne({ _id: ref.id } as Document);
  if (doc === null) return null;
  const decoded = fromStoredAccount(doc);
  if ("problem" in decoded)
    throw new AgentmeterError("DOCUMENT_INVALID", `account ${String(doc._id)}: ${decoded.problem}`);
  return decoded.account as AccountState & Document;
}

export interface AppRevenue {
  enterprise_id: string;
  records: number;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
  /** Voids and refunds, and what they reversed (positive): see RevenueLedger. */
  adjustments: number;
  reversed_billed_micros: bigint;
  reversed_creator_share_micros: bigint;
  reversed_platform_fee_micros: bigint;
}

/** An app's revenue: the sum of its per-partition ledgers (summed here, since FerretDB's $group cannot sum int64 exactly). */
export async function readAppRevenue(layout: MongoLayout, enterpriseId: string): Promise<AppRevenue> {
  const ledgers = (await layout
    .app(enterpriseId)
    .collection(COLLECTIONS.app.revenue)
    .find()
    .toArray()) as unknown as RevenueLedger[];
  // Ledgers written before corrections reached them have no adjustment fields: 0.
  return ledgers.reduce<AppRevenue>(
    (sum, ledger) => ({
      enterprise_id: enterpriseId,
      records: sum.records + ledger.records,
      billed_micros: sum.billed_micros + BigInt(ledger.billed_micros),
      creator_share_micros: sum.creator_share_micros + BigInt(ledger.creator_share_micros),
      platform_fee_micros: sum.platform_fee_micros + BigInt(ledger.platform_fee_micros),
      adjustments: sum.adjustments + (ledger.adjustments ?? 0),
      reversed_billed_micros: sum.reversed_billed_micros + BigInt(ledger.reversed_billed_micros ?? 0n),
      reversed_creator_share_micros:
        sum.reversed_creator_share_micros + BigInt(ledger.reversed_creator_share_micros ?? 0n),
      reversed_platform_fee_micros:
        sum.reversed_platform_fee_micros + BigInt(ledger.reversed_platform_fee_micros ?? 0n),
    }),
    {
      enterprise_id: enterpriseId,
      records: 0,
      billed_micros: 0n,
      creator_share_micros: 0n,
      platform_fee_micros: 0n,
      adjustments: 0,
      reversed_billed_micros: 0n,
      reversed_creator_share_micros: 0n,
      reversed_platform_fee_micros: 0n,
    },
  );
}
