import { z } from "zod";
import { AgentmeterError } from "./errors.ts";

/**
 * The processor's whole configuration, read once from the environment at start and passed down.
 * Every variable has a default that matches the local stack, so a newcomer sets nothing.
 */
const csv = z
  .string()
  .min(1)
  .transform((value) =>
    value
      .split(",")
      .map((part) => part.trim())
      .filter((part) => part.length > 0),
  )
  .pipe(z.array(z.string().regex(/^[A-Za-z0-9.-]+:\d{1,5}$/, "expected host:port")).min(1));

const topicName = z.string().regex(/^[A-Za-z0-9._-]{1,200}$/, "expected a Kafka topic name ([A-Za-z0-9._-])");
const mongoDbName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,40}$/, "expected a database name ([A-Za-z0-9_-], 1-40)");
const positiveInt = z.coerce.number().int().positive();

export const ConfigSchema = z.object({
  KAFKA_BROKERS: csv.default(["127.0.0.1:19092"]),
  KAFKA_CLIENT_ID: z.string().min(1).default("agentmeter"),
  AGENTMETER_GROUP_ID: z.string().min(1).default("agentmeter-processor"),
  AGENTMETER_INPUT_TOPIC: topicName.default("agentmeter.usage.v1"),
  AGENTMETER_DLQ_TOPIC: topicName.default("agentmeter.deadletter.v1"),
  AGENTMETER_EVENTS_TOPIC: topicName.default("agentmeter.budget-events.v1"),
  AGENTMETER_STATE_TOPIC: topicName.default("agentmeter.budget-state.v1"),
  AGENTMETER_PARTITIONS: positiveInt.max(1024).default(6),
  AGENTMETER_MAX_RECORD_BYTES: positiveInt.max(1_000_000).default(65_536),
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, "expected a mongodb:// URI")
    .default("mongodb://127.0.0.1:27117/"),
  AGENTMETER_PLATFORM_DB: mongoDbName.default("MozaiksPlatform"),
  AGENTMETER_APP_DB_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,20}$/, "expected a database name prefix ([A-Za-z0-9_-], 1-20)")
    .default("MozaiksApp_"),
  AGENTMETER_WORKFLOW_DB: mongoDbName.default("autogen_ai_agents"),
  CLICKHOUSE_URL: z.url({ protocol: /^https?$/ }).default("http://127.0.0.1:18123"),
  CLICKHOUSE_USER: z.string().default("default"),
  CLICKHOUSE_PASSWORD: z.string().default(""),
  CLICKHOUSE_DATABASE: z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, "expected a ClickHouse identifier")
    .default("agentmeter"),
  /** JSON file with billing rules (price book, allowances, split); absent means the defaults. */
  AGENTMETER_BILLING_CONFIG: z.string().min(1).optional(),
  /** How many partitions one processor works on at once (each flushes on its own). */
  AGENTMETER_CONCURRENCY: positiveInt.max(64).default(6),
  /**
   * Most bytes of records one fetch brings per partition, and so one flush: larger flushes write each
   * touched document once for more records (and hold more in memory).
   */
  AGENTMETER_FETCH_BYTES_PER_PARTITION: positiveInt
    .min(64 * 1024)
    .max(64 * 1024 * 1024)
    .default(4 * 1024 * 1024),
  /** How long the group waits for a silent member before moving its partitions (the broker allows 6 s and up). */
  AGENTMETER_SESSION_TIMEOUT_MS: positiveInt.min(6_000).max(300_000).default(30_000),
  /** A session costing more than this many times its workflow's average raises a cost_threshold event. */
  AGENTMETER_COST_MULTIPLE: z.coerce.number().positive().max(1_000).default(2),
  /** How often the processor re-reads workflow averages from ClickHouse for that check. */
  AGENTMETER_COST_AVERAGES_REFRESH_MS: positiveInt.max(3_600_000).default(30_000),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
});

export type Config = z.infer<typeof ConfigSchema>;

/** Reads and validates the configuration; a bad value fails with one line naming the variable and the value. */
export function loadConfig(env: Readonly<Record<string, string | undefined>> = process.env): Config {
  const known = Object.fromEntries(
    Object.keys(ConfigSchema.shape)
      .filter((name) => env[name] !== undefined && env[name] !== "")
      .map((name) => [name, env[name]]),
  );
  const parsed = ConfigSchema.safeParse(known);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const name = String(issue?.path[0] ?? "?");
  const shown = /PASSWORD|SECRET|TOKEN/.test(name) ? "<redacted>" : JSON.stringify(env[name]);
  throw new AgentmeterError(
    "CONFIG_INVALID",
    `config: ${name}=${shown} is invalid: ${issue?.message ?? "invalid"}`,
    {
      details: { variable: name },
    },
  );
}
