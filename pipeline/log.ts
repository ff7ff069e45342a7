import { type logCreator, logLevel } from "kafkajs";
import { type Logger, pino } from "pino";

export type { Logger };

/** Paths pino blanks out wherever they appear, so a config dump or an error never prints a secret. */
const REDACT = [
  "CLICKHOUSE_PASSWORD",
  "*.CLICKHOUSE_PASSWORD",
  "password",
  "*.password",
  "MONGODB_URI",
  "*.MONGODB_URI",
  "authorization",
  "*.authorization",
];

export function createLogger(level: string, name = "agentmeter"): Logger {
  return pino({ name, level, redact: { paths: REDACT, censor: "[redacted]" } });
}

/** Routes kafkajs' own logs into pino, one level lower: kafkajs logs recoverable retries as errors. */
export function kafkaLogCreator(logger: Logger): logCreator {
  return () =>
    ({ level, log }) => {
      const { message, ...extra } = log;
      const child = { component: "kafkajs", ...extra };
      if (level === logLevel.ERROR) logger.warn(child, message);
      else if (level === logLevel.WARN) logger.info(child, message);
      else logger.debug(child, message);
    };
}
