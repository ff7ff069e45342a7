import {
  type ClickHouseClient,
  ClickHouseLogLevel,
  type Logger as ClientLogger,
  createClient,
  type ErrorLogParams,
  type LogParams,
  type WarnLogParams,
} from "@clickhouse/client";
import { createLogger, type Logger } from "../../pipeline/log.ts";

export type { ClickHouseClient };

let defaultLogger: Logger | undefined;

/** The logger of clients created without one: pino at LOG_LEVEL (info when unset or not a level). */
function fallbackLogger(): Logger {
  if (defaultLogger === undefined) {
    try {
      defaultLogger = createLogger(process.env.LOG_LEVEL || "info");
    } catch {
      defaultLogger = createLogger("info");
    }
  }
  return defaultLogger;
}

/**
 * The client's own logging, through pino instead of its default console dumps. Levels by meaning: a failed
 * request is logged by the client AND rejected to the caller, which retries it or reports it with context
 * (the sinks, the processor's flush); so the client's copy is detail, at debug. Its warnings (a setting it
 * overrode, a misconfiguration) stay warnings; its info is chatter (debug); trace stays trace.
 */
function loggerClass(logger: Logger): new () => ClientLogger {
  const log = logger.child({ component: "clickhouse-client" });
  const fields = ({ module, args }: LogParams) => ({ module, ...(args === undefined ? {} : { args }) });
  return class PinoClickHouseLogger implements ClientLogger {
    trace(params: LogParams): void {
      log.trace(fields(params), params.message);
    }
    debug(params: LogParams): void {
      log.trace(fields(params), params.message);
    }
    info(params: LogParams): void {
      log.debug(fields(params), params.message);
    }
    warn(params: WarnLogParams): void {
      log.warn({ ...fields(params), err: params.err }, params.message);
    }
    error(params: ErrorLogParams): void {
      log.debug({ ...fields(params), err: params.err }, params.message);
    }
  };
}

/** The client filters before our class sees anything: let through only what pino will print. */
function clientLevel(logger: Logger): ClickHouseLogLevel {
  if (logger.isLevelEnabled("trace")) return ClickHouseLogLevel.TRACE;
  if (logger.isLevelEnabled("debug")) return ClickHouseLogLevel.INFO;
  return ClickHouseLogLevel.WARN;
}

export interface ClickHouseConnection {
  url: string;
  username: string;
  password: string;
}

/**
 * Settings are pinned here rather than left to the server's profile, so the official server image and the
 * local engine (clickhouse-local with listeners) parse and print values the same way.
 */
export function createClickHouse(
  connection: ClickHouseConnection,
  logger: Logger = fallbackLogger(),
): ClickHouseClient {
  return createClient({
    log: { LoggerClass: loggerClass(logger), level: clientLevel(logger) },
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
