import { type ClickHouseClient, createClient } from "@clickhouse/client";

export type { ClickHouseClient };

export interface ClickHouseConnection {
  url: string;
  username: string;
  password: string;
}

/**
 * Settings are pinned here rather than left to the server's profile, so the official server image and the
 * local engine (clickhouse-local with listeners) parse and print values the same way.
 */
export function createClickHouse(connection: ClickHouseConnection): ClickHouseClient {
  return createClient({
    url: connection.url,
    username: connection.username,
    password: connection.password,
    request_timeout: 30_000,
    clickhouse_settings: {
      date_time_input_format: "best_effort",
      output_format_json_quote_64bit_integers: 1,
      // An insert retried after a lost response carries the same token and is dropped by the server.
      insert_deduplicate: 1,
      // Pinned (26.x defaults to 1, older servers to 0): a retried insert is pushed through the MVs again
      // and each MV target drops it by a derived token, so an insert cut between table and MVs heals.
      deduplicate_blocks_in_dependent_materialized_views: 1,
    },
  });
}

/** ClickHouse identifiers are validated by the config schema; this only adds the quoting. */
export function quoteIdent(name: string): string {
  return "`" + name.replaceAll("`", "``") + "`";
}
