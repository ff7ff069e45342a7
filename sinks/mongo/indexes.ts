import type { Db, IndexDescription } from "mongodb";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";

/**
 * Secondary indexes for what readers look up (an SDK asking for a user's paused chats, finance listing
 * a creator's apps). Lookups stay on top-level fields: FerretDB does not push nested filters down.
 */
const PLATFORM: Record<string, IndexDescription[]> = {
  [COLLECTIONS.platform.users]: [{ key: { account_key: 1 }, name: "by_account" }],
  [COLLECTIONS.platform.usage]: [{ key: { as_of: -1 }, name: "by_time" }],
  [COLLECTIONS.platform.enterprises]: [{ key: { mozaiks_user_id: 1 }, name: "by_creator" }],
  [COLLECTIONS.platform.sessions]: [{ key: { mozaiks_user_id: 1, started_at: -1 }, name: "by_creator_time" }],
};
const APP: Record<string, IndexDescription[]> = {
  [COLLECTIONS.app.users]: [{ key: { mozaiks_user_id: 1 }, name: "by_creator" }],
  [COLLECTIONS.app.sessions]: [{ key: { platform_user_id: 1, started_at: -1 }, name: "by_user_time" }],
  [COLLECTIONS.app.pausedChats]: [{ key: { platform_user_id: 1, status: 1 }, name: "by_user_status" }],
  [COLLECTIONS.app.revenue]: [{ key: { partition: 1 }, name: "by_partition" }],
};
const WORKFLOW: Record<string, IndexDescription[]> = {
  [COLLECTIONS.workflow.workflows]: [{ key: { enterprise_id: 1 }, name: "by_app" }],
  [COLLECTIONS.workflow.chatPauses]: [{ key: { account_key: 1, status: 1 }, name: "by_account_status" }],
  [COLLECTIONS.workflow.tokenChats]: [
    { key: { enterprise_id: 1, workflow_name: 1 }, name: "by_app_workflow" },
  ],
  [COLLECTIONS.workflow.tokenSessions]: [{ key: { account_key: 1 }, name: "by_account" }],
};

async function ensure(db: Db, spec: Record<string, IndexDescription[]>): Promise<void> {
  await Promise.all(
    Object.entries(spec).map(([collection, indexes]) => db.collection(collection).createIndexes(indexes)),
  );
}

/**
 * Creates every collection with its indexes once per database per process, one database at a time:
 * the shared databases at start, an app's on first sight, always before any write to it, so that writes
 * never create a collection implicitly while other writes run.
 */
export class IndexRegistry {
  private readonly done = new Map<string, Promise<void>>();
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly layout: MongoLayout) {}

  shared(): Promise<void> {
    return this.once("shared", async () => {
      await ensure(this.layout.platform(), PLATFORM);
      await ensure(this.layout.workflow(), WORKFLOW);
    });
  }

  app(enterpriseId: string): Promise<void> {
    return this.once(`app:${enterpriseId}`, () => ensure(this.layout.app(enterpriseId), APP));
  }

  private once(key: string, create: () => Promise<void>): Promise<void> {
    let pending = this.done.get(key);
    if (pending === undefined) {
      pending = this.queue.then(create, create).catch((error: unknown) => {
        this.done.delete(key);
        throw error;
      });
      this.done.set(key, pending);
      this.queue = pending.catch(() => undefined);
    }
    return pending;
  }
}
