/**
 * `agentmeter/admin`: reads of what the processor wrote, for operators' tools, tests and the SDK's
 * strict mode: account documents and app documents (MongoDB), workflow averages (ClickHouse). A
 * separate entry point so that an agent runtime importing `agentmeter` does not load the database
 * drivers. Clients are created on first use and closed by close().
 */
import { ClickHouseError } from "@clickhouse/client";
import type { MongoClient } from "mongodb";
import { type Config, loadConfig } from "../pipeline/config.ts";
import type { WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
import { type AccountState, budgetStateOf } from "../pipeline/core/index.ts";
import type { Logger } from "../pipeline/log.ts";
import { clickHouseFor, mongoLayoutFor } from "../pipeline/runtime/clients.ts";
import type { BudgetState } from "../schemas/index.ts";
import type { ClickHouseClient } from "../sinks/clickhouse/client.ts";
import { workflowAverages } from "../sinks/clickhouse/workflow-averages.ts";
import { createMongo } from "../sinks/mongo/client.ts";
import { COLLECTIONS, type MongoLayout } from "../sinks/mongo/layout.ts";
import { readAccount } from "../sinks/mongo/read.ts";
import type { AccountIds } from "./session-client.ts";

export type { AccountIds } from "./session-client.ts";

export interface AdminOptions {
  /** Overrides of the environment configuration (pipeline/config.ts): store URLs, database names. */
  config?: Partial<Config>;
  /** Where configuration is read from; default process.env. */
  env?: Readonly<Record<string, string | undefined>>;
  logger?: Logger;
}

/** ClickHouse's codes for a table or database that does not exist (yet). */
const UNKNOWN_TABLE = "60";
const UNKNOWN_DATABASE = "81";

function isMissingTable(error: unknown): boolean {
  return (
    error instanceof ClickHouseError && (error.code === UNKNOWN_TABLE || error.code === UNKNOWN_DATABASE)
  );
}

export class AgentmeterAdmin {
  private mongo: { client: MongoClient; layout: MongoLayout } | undefined;
  private clickhouse: ClickHouseClient | undefined;

  constructor(
    readonly config: Config,
    private readonly logger?: Logger,
  ) {}

  /** From the environment (and overrides); nothing connects until the first read. */
  static open(options: AdminOptions = {}): AgentmeterAdmin {
    const config = { ...loadConfig(options.env ?? process.env), ...options.config } as Config;
    return new AgentmeterAdmin(config, options.logger);
  }

  /** The account's document (balances, money, open chats); null before the processor wrote it. */
  async account(ids: AccountIds): Promise<AccountState | null> {
    return (await readAccount(this.mongoLayout(), ids)) as AccountState | null;
  }

  /** The account's budget state as the processor publishes it, from its document. */
  async budgetState(ids: AccountIds): Promise<BudgetState | null> {
    const account = await this.account(ids);
    return account === null ? null : budgetStateOf(account);
  }

  /** The app's document in the platform's Enterprises collection (first and last use, creator). */
  async enterprise(enterpriseId: string): Promise<Record<string, unknown> | null> {
    return this.mongoLayout()
      .platform()
      .collection(COLLECTIONS.platform.enterprises)
      .findOne({ _id: enterpriseId as never });
  }

  /** A workflow's averages over its finished sessions (ClickHouse `workflow_averages`). */
  async workflowAverages(workflowName: string, enterpriseId: string): Promise<WorkflowAverages | null> {
    this.clickhouse ??= clickHouseFor(this.config, this.logger);
    try {
      return await workflowAverages(
        this.clickhouse,
        this.config.CLICKHOUSE_DATABASE,
        workflowName,
        enterpriseId,
      );
    } catch (error) {
      // No processor has created the analytics tables yet: there is no baseline, which is an answer.
      if (isMissingTable(error)) return null;
      throw error;
    }
  }

  async close(): Promise<void> {
    await this.mongo?.client.close();
    await this.clickhouse?.close();
    this.mongo = undefined;
    this.clickhouse = undefined;
  }

  private mongoLayout(): MongoLayout {
    if (this.mongo === undefined) {
      const client = createMongo(this.config.MONGODB_URI);
      this.mongo = { client, layout: mongoLayoutFor(client, this.config) };
    }
    return this.mongo.layout;
  }
}
