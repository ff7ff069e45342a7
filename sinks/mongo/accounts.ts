import type { Collection, Document } from "mongodb";
import type { AccountState } from "../../pipeline/core/account.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";

/** The identity of an account, enough to find its document. */
export interface AccountAddress {
  level: "platform" | "app_usage";
  enterprise_id: string;
  mozaiks_user_id: string;
  platform_user_id?: string | null | undefined;
}

/**
 * Where an account's document lives in the seed's layout: a creator's platform budget in
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

export type AccountDoc = AccountState;

/** The address of an account the billing core knows (platform accounts have no enterprise). */
export function accountAddress(account: AccountState): AccountAddress {
  return {
    level: account.level,
    enterprise_id: account.enterprise_id ?? "",
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
  };
}
