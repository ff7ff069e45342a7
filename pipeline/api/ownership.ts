import type { MongoLayout } from "../../sinks/mongo/layout.ts";
import { projectedAppCreator, projectedCreatorApps } from "./reads/apps.ts";

/**
 * Which creator an app belongs to, for tenancy. The billing core binds an app's creator in two ways
 * (pipeline/core/limits.ts, creatorMismatchReason):
 * - pinned by the operator in the billing config (`apps: { "<enterprise_id>": { "creator": ... } }`,
 *   AGENTMETER_BILLING_CONFIG): every record of the app naming another creator is rejected
 *   (RECORD_CREATOR_MISMATCH). This is the binding only the operator's path sets, and the API takes it
 *   as the truth for a pinned app;
 * - otherwise per end-user account, by the account's first record. There is no per-app binding for an
 *   unpinned app: two end users' first records may name two creators, and the processor's `Enterprises`
 *   projection keeps whichever creator the latest usage named. The API can only follow that projection
 *   for unpinned apps, unless `AGENTMETER_API_APP_OWNERS=pinned`, under which an unpinned app belongs to
 *   no creator (a creator's key gets 404 for it; `read` and `admin` keys still read it).
 */
export type OwnersPolicy = "pinned" | "pinned_then_projection";

export interface AppOwners {
  /** The app's creator, or null when it has none the policy accepts (answered 404 to creator keys). */
  creatorOf(enterpriseId: string): Promise<string | null>;
  /** The creator's apps, by id. */
  appsOf(mozaiksUserId: string): Promise<string[]>;
}

export class AppOwnership implements AppOwners {
  private readonly pinned: ReadonlyMap<string, string>;

  constructor(
    pinnedApps: Readonly<Record<string, { creator: string }>>,
    private readonly layout: MongoLayout,
    private readonly policy: OwnersPolicy,
  ) {
    this.pinned = new Map(Object.entries(pinnedApps).map(([app, pin]) => [app, pin.creator]));
  }

  async creatorOf(enterpriseId: string): Promise<string | null> {
    const pinned = this.pinned.get(enterpriseId);
    if (pinned !== undefined) return pinned;
    if (this.policy === "pinned") return null;
    return projectedAppCreator(this.layout, enterpriseId);
  }

  async appsOf(mozaiksUserId: string): Promise<string[]> {
    const apps = new Set<string>();
    for (const [app, creator] of this.pinned) if (creator === mozaiksUserId) apps.add(app);
    if (this.policy === "pinned_then_projection") {
      // A projection naming this creator for an app pinned to another is stale (written before the pin).
      for (const app of await projectedCreatorApps(this.layout, mozaiksUserId))
        if (!this.pinned.has(app)) apps.add(app);
    }
    return [...apps].sort();
  }
}
