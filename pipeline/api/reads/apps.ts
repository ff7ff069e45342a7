import type { Document } from "mongodb";
import { COLLECTIONS, type MongoLayout } from "../../../sinks/mongo/layout.ts";

/** The creator an app is bound to (its Enterprises document), or null for an app nobody has used. */
export async function appCreator(layout: MongoLayout, enterpriseId: string): Promise<string | null> {
  const doc = await layout
    .platform()
    .collection(COLLECTIONS.platform.enterprises)
    .findOne({ _id: enterpriseId } as Document, { projection: { mozaiks_user_id: 1 } });
  return typeof doc?.mozaiks_user_id === "string" ? doc.mozaiks_user_id : null;
}

/** Every app bound to the creator, by id. */
export async function creatorAppIds(layout: MongoLayout, mozaiksUserId: string): Promise<string[]> {
  const docs = await layout
    .platform()
    .collection(COLLECTIONS.platform.enterprises)
    .find({ mozaiks_user_id: mozaiksUserId }, { projection: { _id: 1 } })
    .toArray();
  return docs.map((doc) => String(doc._id)).sort();
}
