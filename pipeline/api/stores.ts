import type { MongoClient } from "mongodb";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import type { MongoLayout } from "../../sinks/mongo/layout.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";
import { clickHouseFor, mongoLayoutFor } from "../runtime/clients.ts";

/** The stores the API reads (never writes): MongoDB's documents and ClickHouse's tables. */
export class ReadStores {
  private constructor(
    private readonly mongo: MongoClient,
    readonly layout: MongoLayout,
    readonly clickhouse: ClickHouseClient,
    readonly database: string,
  ) {}

  static open(config: Config, logger: Logger): ReadStores {
    const mongo = createMongo(config.MONGODB_URI);
    return new ReadStores(
      mongo,
      mongoLayoutFor(mongo, config),
      clickHouseFor(config, logger),
      config.CLICKHOUSE_DATABASE,
    );
  }

  async close(): Promise<void> {
    await this.mongo.close();
    await this.clickhouse.close();
  }
}
