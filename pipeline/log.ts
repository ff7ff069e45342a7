import { type logCreator, logLevel } from "kafkajs";
import { type Logger, pino } from "pino";
import { redactUrl } from "./auth/redact.ts";

export type { Logger };

/**
 * Paths pino censors wherever they appear (top level or one object down), so a config dump or an error
 * never prints a secret: passwords and secrets are blanked; URLs keep their host and lose their password.
 */
const SECRET_KEYS = [
  "CLICKHOUSE_PASSWORD",
  "KAFKA_SASL_PASSWORD",
  "AGENTMETER_OPERATOR_SECRET",
  "password",
  "secret",
  "operatorSecret",
  "authorization",
];
const URL_KEYS = ["MONGODB_URI", "CLICKHOUSE_URL", "uri", "url"];
const SASL_KEYS = ["sasl.password"];
const REDACT_PATHS = [...SECRET_KEYS, ...URL_KEYS, ...SASL_KEYS].flatMap((key) => [key, `*.${key}`]);
const URL_KEY_SET = new Set(URL_KEYS);

function censor(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1] ?? "";
  if (URL_KEY_SET.has(key)) return typeof value === "string" ? redactUrl(value) : "[redacted]";
  return "[redacted]";
}

/** `destination` is for tests that read what was logged; the default is stdout. */
export function createLogger(
  level: string,
  name = "agentmeter",
  destination?: NodeJS.WritableStream,
): Logger {
  const options = { name, level, redact: { paths: REDACT_PATHS, censor } };
  return destination === undefined ? pino(options) : pino(options, destination);
}

/**
 * Errors kafkajs retries by itself and that a rebalance or a broker restart always produces: logged at
 * debug, so an operator's warnings mean something (the retry that finally fails is still an error).
 */
const ROUTINE_KAFKA_ERRORS =
  /rebalancing|not the correct coordinator|coordinator is (loading|not available)|not aware of this member|leadership election|Connection (error|timeout)|ECONNREFUSED|Closed connection/i;

/**
 * kafkajs warns that an idempotent producer with bounded retries "may invalidate EoS guarantees" on
 * every connect. agentmeter does not rest on kafkajs' exactly-once: a send that exhausts its retries
 * fails, its caller sends the same record again, and the billing core counts a record id once. Logged
 * at debug, so a newcomer's first log does not warn of a risk that is not there.
 */
const NOT_OUR_GUARANTEE = /^Limiting retries for the idempotent producer may invalidate EoS guarantees/;

/** Routes kafkajs' own logs into pino, one level lower: kafkajs logs recoverable retries as errors. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ level, log }) => {
      const { message, ...extra } = log;
      const child = { component: "kafkajs", ...extra };
      const routine =
        !message.startsWith("Crash") &&
        ("retryCount" in extra || ROUTINE_KAFKA_ERRORS.test(`${message} ${String(extra.error ?? "")}`));
      if ((routine && level <= logLevel.WARN) || NOT_OUR_GUARANTEE.test(message))
        logger.debug(child, message);
      else if (level === logLevel.ERROR) logger.warn(child, message);
      else if (level === logLevel.WARN) logger.info(child, message);
      else logger.debug(child, message);
    };
}
