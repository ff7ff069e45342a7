/**
 * Every client a runtime builds from its validated configuration, built one way: the processor, the
 * audit, the demo, the benches and the integration tests call these instead of repeating the options.
 */
import type { MongoClient } from "mongodb";
import { type ClickHouseClient, createClickHouse } from "../../sinks/clickhouse/client.ts";
import { layoutNames, MongoLayout } from "../../sinks/mongo/layout.ts";
import type { Config } from "../config.ts";
import type { Logger } from "../log.ts";

/** Built in pipeline/kafka.ts, which loads no store driver (the SDK imports it). */
export { idempotentProducer } from "../kafka.ts";

export type ClickHouseConfig = Pick<Config, "CLICKHOUSE_URL" | "CLICKHOUSE_USER" | "CLICKHOUSE_PASSWORD">;

/** A ClickHouse client for the configured server (settings pinned in sinks/clickhouse/client.ts). */
export function clickHouseFor(config: ClickHouseConfig, logger?: Logger): ClickHouseClient {
  return createClickHouse(
    { url: config.CLICKHOUSE_URL, username: config.CLICKHOUSE_USER, password: config.CLICKHOUSE_PASSWORD },
    logger,
  );
}

export type LayoutConfig = Pick<
  Config,
  "AGENTMETER_PLATFORM_DB" | "AGENTMETER_APP_DB_PREFIX" | "AGENTMETER_WORKFLOW_DB"
>;

/** The MongoDB databases and collections under the configured names. */
export function mongoLayoutFor(mongo: MongoClient, config: LayoutConfig): MongoLayout {
  return new MongoLayout(mongo, layoutNames(config));
}
