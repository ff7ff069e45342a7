import type { Collection, Db, Document, MongoClient } from "mongodb";
import { parseNamespaceKey } from "../../schemas/keys.ts";

/** Database names of the MongoDB layout (platform, per-app, workflow); configurable so tests and replays can use their own namespace. */
export function layoutNames(config: {
  AGENTMETER_PLATFORM_DB: string;
  AGENTMETER_APP_DB_PREFIX: string;
  AGENTMETER_WORKFLOW_DB: string;
}): LayoutNames {
  return {
    platformDb: config.AGENTMETER_PLATFORM_DB,
    appDbPrefix: config.AGENTMETER_APP_DB_PREFIX,
    workflowDb: config.AGENTMETER_WORKFLOW_DB,
  };
}

export interface LayoutNames {
  platformDb: string;
  appDbPrefix: string;
  workflowDb: string;
}

/**
 * The three kinds of database (the platform's, one per app, the workflow registry) and their
 * collections. Account documents are the source of truth for balances; everything else is derived from
 * the same records and written before them (see the flush order in pipeline/processor/flush.ts).
 */
export class MongoLayout {
  constructor(
    private readonly client: MongoClient,
    readonly names: LayoutNames,
  ) {}

  platform(): Db {
    return this.client.db(this.names.platformDb);
  }

  /** enterprise_id is validated by the id rule in schemas/ids.ts, so it cannot escape the database name. */
  app(enterpriseId: string): Db {
    return this.client.db(this.names.appDbPrefix + enterpriseId);
  }

  workflow(): Db {
    return this.client.db(this.names.workflowDb);
  }

  /** The collection a namespace names (schemas/keys.ts). */
  collectionAt(namespace: string): Collection<Document> {
    const { dbName, collectionName } = parseNamespaceKey(namespace);
    return this.client.db(dbName).collection(collectionName);
  }
}

export const COLLECTIONS = {
  platform: {
    users: "MozaiksUsers",
    enterprises: "Enterprises",
    sessions: "PlatformSessions",
    usage: "PlatformUsage",
    holdRegistry: "HoldRegistry",
  },
  app: {
    users: "AppUsers",
    sessions: "AppSessions",
    revenue: "RevenueSharing",
    pausedChats: "PausedChats",
  },
  workflow: {
    workflows: "Workflows",
    tokenSessions: "TokenSessions",
    chatPauses: "ChatPauses",
    tokenChats: "TokenChats",
  },
} as const;
