import type { CreatorAppsResponse } from "../../../schemas/api.ts";
import { money } from "../money.ts";
import type { AppOwners } from "../ownership.ts";
import type { ReadStores } from "../stores.ts";
import { adjustedFigures, creatorAppTotals, zeroTotals } from "./app-totals.ts";

/**
 * The creator's apps (owned: ownership.ts; or with end-user records naming the creator in ClickHouse)
 * with their end users' lifetime totals.
 */
export async function creatorApps(
  stores: ReadStores,
  owners: AppOwners,
  mozaiksUserId: string,
): Promise<CreatorAppsResponse> {
  const [ids, totals] = await Promise.all([
    owners.appsOf(mozaiksUserId),
    creatorAppTotals(stores.clickhouse, stores.database, mozaiksUserId),
  ]);
  const apps = [...new Set([...ids, ...totals.keys()])].sort();
  return {
    mozaiks_user_id: mozaiksUserId,
    apps: apps.map((id) => {
      const app = totals.get(id) ?? zeroTotals(id);
      return {
        enterprise_id: id,
        records: app.records,
        tokens: app.tokens,
        billed: money(app.billed_micros),
        creator_share: money(app.creator_share_micros),
        platform_fee: money(app.platform_fee_micros),
        ...adjustedFigures(app),
      };
    }),
  };
}
