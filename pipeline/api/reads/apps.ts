import type { Document } from "mongodb";
import { COLLECTIONS, type MongoLayout } from "../../../sinks/mongo/layout.ts";

/**
 * The creator the processor's `Enterprises` projection names for an app (the creator its latest usage
 * named), or null for an app nobody has used. For an app pinned in the billing config, ownership.ts
 * answers from the pin instead.
 */
export async function projectedAppCreator(layout: MongoLayout, enterpriseId: string): Promise<string | null> {
  const doc = await layout
    .platform()
    .collection(COLLECTIONS.platform.enterprises)
    .findOne({ _id: enterpriseId } as Document, { projection: { mozaiks_user_id: 1 } });
  return typeof doc?.mozaiks_user_id === "string" ? doc.mozaiks_user_id : null;
}

/** Every app the `Enterprises` projection names the creator of, by id. */
export async function projectedCreatorApps(layout: MongoLayout, mozaiksUserId: string): Promise<string[]> {
  const docs = await layout
    .platform()
    .collection(COLLECTIONS.platform.enterprises)
    .find({ mozaiks_user_id: mozaiksUserId }, { projection: { _id: 1 } })
    .toArray();
  return docs.map((doc) => String(doc._id)).sort();
}
