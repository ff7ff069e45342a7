import type { Collection, Document } from "mongodb";
import type { AccountState } from "../../pipeline/core/account.ts";
import type { AccountAddress } from "../../pipeline/processor/ports.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";

export type { AccountAddress };

/**
 * Where an account's document lives in the MongoDB layout (layout.ts): a creator's platform budget in
 * MozaiksPlatform.MozaiksUsers (keyed by mozaiks_user_id), an end user's balance in
 * MozaiksApp_{enterprise_id}.AppUsers (keyed by platform_user_id).
 */
export function accountDocRef(
  layout: MongoLayout,
  address: AccountAddress,
): { collection: Collection<Document>; id: string } {
  if (address.level === "platform") {
    return {
      collection: layout.platform().collection(COLLECTIONS.platform.users),
      id: address.mozaiks_user_id,
    };
  }
  return {
    collection: layout.app(address.enterprise_id).collection(COLLECTIONS.app.users),
    id: address.platform_user_id ?? "",
  };
}

/** The address of an account the billing core knows (platform accounts have no enterprise). */
export function accountAddress(account: AccountState): AccountAddress {
  return {
    level: account.level,
    enterprise_id: account.enterprise_id ?? "",
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
  };
}
