import type { Document, MongoClient } from "mongodb";
import { accountKeyOf, enterpriseIdSchema, type Level } from "../../schemas/index.ts";
import { COLLECTIONS, type MongoLayout } from "../../sinks/mongo/layout.ts";
import { readAppRevenue } from "../../sinks/mongo/read.ts";
import type { Figures, RevenueField } from "./figures.ts";

/** An account document as stored, with where it was found (its key is derived from the place, not its fields). */
export interface StoredAccount {
  account_key: string;
  level: Level;
  enterprise_id: string | null;
  doc: Document;
}

export interface MongoActual {
  accounts: Map<string, StoredAccount>;
  revenue: Map<string, Figures<RevenueField>>;
  apps: string[];
}

/**
 * Apps that have a database in this namespace: every `{prefix}{enterprise_id}` whose tail is a valid
 * enterprise id. A replay's databases (`{prefix}R{suffix}_…`) never pass, since enterprise ids are lower case.
 */
async function storedApps(client: MongoClient, prefix: string): Promise<string[]> {
  const { databases } = await client.db("admin").admin().listDatabases({ nameOnly: true });
  return databases
    .map((db) => db.name)
    .filter((name) => name.startsWith(prefix))
    .map((name) => name.slice(prefix.length))
    .filter((tail) => enterpriseIdSchema.safeParse(tail).success);
}

/** Every account document and every app's revenue ledgers of one namespace. Reads only. */
export async function readMongo(
  client: MongoClient,
  layout: MongoLayout,
  expectedApps: Iterable<string>,
): Promise<MongoActual> {
  const apps = [
    ...new Set([...(await storedApps(client, layout.names.appDbPrefix)), ...expectedApps]),
  ].sort();
  const accounts = new Map<string, StoredAccount>();
  for (const doc of await layout.platform().collection(COLLECTIONS.platform.users).find().toArray()) {
    const key = accountKeyOf({ level: "platform", mozaiks_user_id: String(doc._id) });
    accounts.set(key, { account_key: key, level: "platform", enterprise_id: null, doc });
  }
  const revenue = new Map<string, Figures<RevenueField>>();
  await Promise.all(
    apps.map(async (app) => {
      for (const doc of await layout.app(app).collection(COLLECTIONS.app.users).find().toArray()) {
        const key = accountKeyOf({
          level: "app_usage",
          enterprise_id: app,
          platform_user_id: String(doc._id),
        });
        accounts.set(key, { account_key: key, level: "app_usage", enterprise_id: app, doc });
      }
      const ledger = await readAppRevenue(layout, app);
      revenue.set(app, {
        records: BigInt(ledger.records),
        billed_micros: ledger.billed_micros,
        creator_share_micros: ledger.creator_share_micros,
        platform_fee_micros: ledger.platform_fee_micros,
        adjustments: BigInt(ledger.adjustments),
        reversed_billed_micros: ledger.reversed_billed_micros,
        reversed_creator_share_micros: ledger.reversed_creator_share_micros,
        reversed_platform_fee_micros: ledger.reversed_platform_fee_micros,
      });
    }),
  );
  return { accounts, revenue, apps };
}
