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
  /**
   * The source name read for (the audited incarnation of the topic): the revenue holds only that
   * source's ledgers, and a document's watermark counts only when it names it. Absent: every ledger.
   */
  source?: string;
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

/**
 * An app's revenue: the sum of its per-partition ledgers of one source (a ledger's id is
 * `{source}:{partition}`: sinks/mongo/revenue.ts). The ledgers of another incarnation of the topic hold
 * records no log of this one has. Summed here, as readAppRevenue does (FerretDB's $group cannot sum
 * int64 exactly).
 */
export function sourceRevenue(ledgers: readonly Document[], source: string): Figures<RevenueField> {
  const sum = {
    records: 0n,
    billed_micros: 0n,
    creator_share_micros: 0n,
    platform_fee_micros: 0n,
    adjustments: 0n,
    reversed_billed_micros: 0n,
    reversed_creator_share_micros: 0n,
    reversed_platform_fee_micros: 0n,
  } satisfies Figures<RevenueField>;
  for (const ledger of ledgers) {
    const id = String(ledger._id);
    if (!id.startsWith(`${source}:`) || !/^[0-9]+$/.test(id.slice(source.length + 1))) continue;
    // Ledgers written before corrections reached them have no adjustment fields: 0.
    for (const field of Object.keys(sum) as RevenueField[]) sum[field] += BigInt(ledger[field] ?? 0);
  }
  return sum;
}

/**
 * Every account document and every app's revenue ledgers of one namespace; given `source`, only the
 * ledgers of that source (see MongoActual). Reads only.
 */
export async function readMongo(
  client: MongoClient,
  layout: MongoLayout,
  expectedApps: Iterable<string>,
  source?: string,
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
      if (source !== undefined) {
        const ledgers = await layout.app(app).collection(COLLECTIONS.app.revenue).find().toArray();
        revenue.set(app, sourceRevenue(ledgers, source));
        return;
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
  return source === undefined ? { accounts, revenue, apps } : { accounts, revenue, apps, source };
}
