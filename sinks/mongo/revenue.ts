import type { Collection, Document } from "mongodb";
import { topicPartitionKeyOf } from "../../schemas/keys.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";

export type { RevenueLedger } from "../../pipeline/core/revenue-ledger.ts";

export function revenueDocRef(
  layout: MongoLayout,
  enterpriseId: string,
  topic: string,
  partition: number,
): { collection: Collection<Document>; id: string } {
  return {
    collection: layout.app(enterpriseId).collection(COLLECTIONS.app.revenue),
    id: topicPartitionKeyOf(topic, partition),
  };
}
