import { z } from "zod";
import { AgentmeterError } from "../schemas/errors.ts";
import { ENTERPRISE_ID_PATTERN } from "../schemas/ids.ts";
import { shownValue } from "./auth/redact.ts";
import { OPERATOR_SECRET_MIN_BYTES } from "./auth/signature.ts";

/**
 * The processor's whole configuration, read once from the environment at start and passed down.
 * Every variable has a default that matches the local stack, so a newcomer sets nothing.
 */
const BROKERS_EXPECTED = "expected host:port entries separated by commas";
const brokerPort = wholeNumber(1, 65_535);
/** One DNS label: letters, digits and '-', not at either end (RFC 1123). */
const HOST_LABEL = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;
const IPV4_OCTET = /^(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])$/;

/** What is wrong with a broker's host, or undefined: a host name (a trailing dot allowed) or IPv4. */
function brokerHostProblem(host: string): string | undefined {
  if (host === "") return "the host is missing";
  const name = host.endsWith(".") ? host.slice(0, -1) : host;
  const labels = name.split(".");
  // All digits and dots reads as an IPv4 address, so it must be one (999.0.0.1 is no host name).
  if (/^[0-9.]+$/.test(name)) {
    return labels.length === 4 && labels.every((label) => IPV4_OCTET.test(label))
      ? undefined
      : "the host is not an IPv4 address (four numbers from 0 to 255)";
  }
  return name.length <= 253 && labels.every((label) => HOST_LABEL.test(label))
    ? undefined
    : "the host must be a host name (labels of A-Z a-z 0-9 and '-', separated by '.') or an IPv4 address";
}

/** What is wrong with one KAFKA_BROKERS entry (already trimmed), or undefined. */
function brokerProblem(entry: string): string | undefined {
  if (entry === "") return "it is empty (a stray comma?)";
  if (/\s/.test(entry)) return "it holds whitespace";
  // kafkajs reads an entry as split(":")[0] and [1]: an IPv6 address, bracketed or not, never reaches it.
  if (entry.startsWith("["))
    return "IPv6 addresses are not supported by the Kafka client (it splits host:port at the first ':'): use a host name";
  if (entry.indexOf(":") !== entry.lastIndexOf(":"))
    return "it holds more than one ':' (one host:port per entry; IPv6 addresses are not supported: use a host name)";
  const colon = entry.indexOf(":");
  if (colon < 0) return "the port is missing";
  const hostProblem = brokerHostProblem(entry.slice(0, colon));
  if (hostProblem !== undefined) return hostProblem;
  const port = entry.slice(colon + 1);
  const parsed = brokerPort.safeParse(port);
  if (!parsed.success)
    return `port ${JSON.stringify(port)} is invalid: ${parsed.error.issues[0]?.message ?? "invalid"}`;
  return undefined;
}

/**
 * KAFKA_BROKERS: comma-separated host:port entries (space around a comma is dropped), each a host name
 * or IPv4 address and a port from 1 to 65535, as kafkajs takes them. A bad entry fails with one line
 * naming it by position, and an empty one (a trailing or doubled comma) is refused, not skipped.
 */
const brokers = z.string().transform((value, ctx) => {
  const entries = value.split(",").map((part) => part.trim());
  if (entries.every((entry) => entry === "")) {
    ctx.addIssue({ code: "custom", message: `${BROKERS_EXPECTED}, got none` });
    return z.NEVER;
  }
  for (const [index, entry] of entries.entries()) {
    const problem = brokerProblem(entry);
    if (problem === undefined) continue;
    const named = entry === "" ? `entry ${index + 1}` : `entry ${index + 1} ${JSON.stringify(entry)}`;
    ctx.addIssue({ code: "custom", message: `${BROKERS_EXPECTED}: ${named}: ${problem}` });
    return z.NEVER;
  }
  return entries;
});

const topicName = z
  .string()
  .regex(/^[A-Za-z0-9._-]{1,200}$/, "expected a Kafka topic name ([A-Za-z0-9._-])")
  // Kafka refuses these two names outright.
  .refine((name) => name !== "." && name !== "..", "expected a Kafka topic name other than . and ..");

/**
 * What is wrong with a MongoDB URI's host list, or undefined: every host named, every port a number
 * from 1 to 65535. The driver checks this (and its options) only when a command creates its client,
 * which some do after minutes of other work; the driver itself is not loaded here, because the SDK
 * reads this configuration and must not load a database driver (test/unit/sdk-entry.test.ts).
 */
function mongoHostsProblem(uri: string): string | undefined {
  const afterScheme = uri.replace(/^mongodb(\+srv)?:\/\//, "");
  // The driver ends the user name and password at the first "@", and refuses a "/", "?", "#" or "@" in
  // them that is not percent-encoded. Said here without quoting them: the text before an "@" is a secret.
  const at = afterScheme.indexOf("@");
  if (at >= 0 && /[/?#]/.test(afterScheme.slice(0, at)))
    return "the user name or password holds a '/', '?' or '#': percent-encode it (%2F, %3F, %23), as the MongoDB driver requires";
  // Up to the path or the options.
  const userAndHosts = afterScheme.split(/[/?]/, 1)[0] ?? "";
  if (userAndHosts.indexOf("@") !== userAndHosts.lastIndexOf("@"))
    return "the user name or password holds an '@': percent-encode it (%40), as the MongoDB driver requires";
  const authority = userAndHosts.slice(userAndHosts.lastIndexOf("@") + 1);
  if (authority === "") return "expected a host after mongodb://";
  for (const host of authority.split(",")) {
    const port = /^(?:\[[0-9A-Fa-f:.]+\]|[^:]+)(?::([0-9]*))?$/.exec(host);
    if (port === null) return `host ${JSON.stringify(host)} is not a host or host:port`;
    const number = port[1];
    if (
      number !== undefined &&
      !(/^[0-9]{1,5}$/.test(number) && Number(number) >= 1 && Number(number) <= 65_535)
    )
      return `host ${JSON.stringify(host)}: the port must be a number from 1 to 65535`;
  }
  return undefined;
}
const mongoDbName = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,40}$/, "expected a database name ([A-Za-z0-9_-], 1-40)");
/**
 * A whole number from `min` to `max`, written in decimal digits (a leading minus only when `min` is
 * negative). Not z.coerce.number(): that reads " " as 0 (which turns features off), "0x1F90" as 8080
 * and "8e3" as 8000. One message for both kinds of mistake, so the line says what to write instead.
 */
export function wholeNumber(
  min: number,
  max: number,
  message = `expected a whole number from ${min} to ${max}`,
) {
  // 15 digits: every such number is exact as a JS number, and no bound here comes near it.
  const digits = min < 0 ? /^-?[0-9]{1,15}$/ : /^[0-9]{1,15}$/;
  return z
    .string()
    .regex(digits, message)
    .transform(Number)
    .pipe(z.number().int().min(min, message).max(max, message));
}

const COST_MULTIPLE_MESSAGE =
  "expected a number above 0 and at most 1000 in decimal digits, such as 2 or 1.5";
/** A decimal such as 1.5, for the reasons wholeNumber gives. */
const costMultiple = z
  .string()
  .regex(/^[0-9]{1,4}(\.[0-9]{1,6})?$/, COST_MULTIPLE_MESSAGE)
  .transform(Number)
  .pipe(z.number().positive(COST_MULTIPLE_MESSAGE).max(1_000, COST_MULTIPLE_MESSAGE));

const flag = z
  .enum(["true", "false", "1", "0"], 'expected "true" or "false" (or 1 or 0)')
  .transform((value) => value === "true" || value === "1");

/** kafkajs' SASL mechanisms (GSSAPI and OAUTHBEARER need code, not just variables). */
const SASL_MECHANISMS = ["plain", "scram-sha-256", "scram-sha-512"] as const;

/** MongoDB's limit on a database name, in bytes. */
export const MONGODB_DB_NAME_MAX_BYTES = 63;
/** The id rule's longest enterprise id (schemas/ids.ts). */
export const ENTERPRISE_ID_MAX_LENGTH = 48;

export const ConfigSchema = z.object({
  KAFKA_BROKERS: brokers.default(["127.0.0.1:19092"]),
  KAFKA_CLIENT_ID: z.string().min(1).default("agentmeter"),
  /** TLS to the brokers (the system's CAs, or KAFKA_SSL_CA_FILE's). */
  KAFKA_SSL: flag.default(false),
  /** PEM file of the CA(s) that signed the brokers' certificates; needs KAFKA_SSL=true. */
  KAFKA_SSL_CA_FILE: z.string().min(1).optional(),
  KAFKA_SASL_MECHANISM: z.enum(SASL_MECHANISMS).optional(),
  KAFKA_SASL_USERNAME: z.string().min(1).optional(),
  KAFKA_SASL_PASSWORD: z.string().min(1).optional(),
  /**
   * The operator's key for credit records (docs/security.md): set, every credit record must carry its
   * HMAC signature; unset, credits are accepted unsigned (development only).
   */
  AGENTMETER_OPERATOR_SECRET: z
    .string()
    .refine(
      (value) => Buffer.byteLength(value, "utf8") >= OPERATOR_SECRET_MIN_BYTES,
      `must be at least ${OPERATOR_SECRET_MIN_BYTES} bytes (e.g. openssl rand -hex 32)`,
    )
    .optional(),
  AGENTMETER_GROUP_ID: z.string().min(1).default("agentmeter-processor"),
  AGENTMETER_INPUT_TOPIC: topicName.default("agentmeter.usage.v1"),
  AGENTMETER_DLQ_TOPIC: topicName.default("agentmeter.deadletter.v1"),
  AGENTMETER_EVENTS_TOPIC: topicName.default("agentmeter.budget-events.v1"),
  AGENTMETER_STATE_TOPIC: topicName.default("agentmeter.budget-state.v1"),
  /** Where hold decisions go, keyed by hold_id: the reply topic a reserving agent runtime listens on. */
  AGENTMETER_HOLDS_TOPIC: topicName.default("agentmeter.hold-decisions.v1"),
  AGENTMETER_PARTITIONS: wholeNumber(1, 1024).default(6),
  AGENTMETER_MAX_RECORD_BYTES: wholeNumber(1, 1_000_000).default(65_536),
  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, "expected a mongodb:// URI")
    .superRefine((uri, ctx) => {
      const problem = mongoHostsProblem(uri);
      if (problem !== undefined) ctx.addIssue({ code: "custom", message: problem });
    })
    .default("mongodb://127.0.0.1:27117/"),
  AGENTMETER_PLATFORM_DB: mongoDbName.default("MozaiksPlatform"),
  AGENTMETER_APP_DB_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,20}$/, "expected a database name prefix ([A-Za-z0-9_-], 1-20)")
    .default("MozaiksApp_"),
  AGENTMETER_WORKFLOW_DB: mongoDbName.default("autogen_ai_agents"),
  /**
   * Longest enterprise id the app databases can hold: prefix + id must fit MongoDB's 63 bytes. Unset, it
   * is 48 (the id rule's) or what the prefix leaves, if less; set, prefix + it must fit.
   */
  AGENTMETER_MAX_ENTERPRISE_ID_LENGTH: wholeNumber(1, ENTERPRISE_ID_MAX_LENGTH).optional(),
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
  AGENTMETER_CONCURRENCY: wholeNumber(1, 64).default(6),
  /**
   * Most bytes of records one fetch brings per partition, and so one flush: larger flushes write each
   * touched document once for more records (and hold more in memory).
   */
  AGENTMETER_FETCH_BYTES_PER_PARTITION: wholeNumber(64 * 1024, 64 * 1024 * 1024).default(4 * 1024 * 1024),
  /**
   * How writes reach MongoDB and ClickHouse. `behind` (default): budget events and states are published as
   * soon as records are applied, and the stores are written behind in coalesced cycles; offsets are
   * committed as far as the stores hold. `sync`: each fetched batch is written before the next is
   * fetched (the slower, simpler mode, kept for comparison and as the fallback after a store refusal).
   */
  AGENTMETER_WRITE_MODE: z.enum(["behind", "sync"]).default("behind"),
  /** Records applied but not yet in the stores, per partition, past which the partition stops fetching. */
  AGENTMETER_MAX_PENDING_RECORDS: wholeNumber(100, 10_000_000).default(50_000),
  /**
   * Least time between the starts of a partition's write-behind cycles; records arriving meanwhile join
   * the next cycle. Under light load cycles are short and many, and each writes a ClickHouse part in
   * every rollup table: waiting makes them fewer and larger (docs/processing.md). Decisions never wait
   * for it; the stores and the committed offsets lag by up to this more. 0 (default): back to back.
   * Raised by default once a soak with it on is clean (docs/processing.md: rollup rows were counted
   * twice in soaks with and without it, cause not found).
   */
  AGENTMETER_MIN_CYCLE_INTERVAL_MS: wholeNumber(0, 60_000).default(0),
  /**
   * Records a processor may dead-letter in an hour as RECORD_APPLY_FAILED (the billing core failed on a
   * valid record, from a fresh load: a bug). Past it, a failing batch is retried until a fix is deployed,
   * as with 0: a bad deploy cannot drain a topic into the dead-letter topic.
   */
  AGENTMETER_APPLY_FAILURE_LIMIT: wholeNumber(0, 1_000_000).default(10),
  /** Age of the oldest record not yet in the stores past which its partition stops fetching. */
  AGENTMETER_MAX_STORE_LAG_MS: wholeNumber(1_000, 3_600_000).default(30_000),
  /**
   * How often the processor appends a tick to each partition it owns that has accounts holding tokens
   * (event time on idle partitions, so holds expire there): a hold outlives its expiry by at most this.
   * 0 turns ticks off (holds then expire only at their account's next record).
   */
  AGENTMETER_TICK_INTERVAL_MS: wholeNumber(0, 3_600_000).default(10_000),
  /**
   * A MongoDB answer that takes longer than this fails the operation and drops its connection; the
   * write is retried on a new one (compare-and-set keeps that exact). A hung server or connection then
   * holds writes for this long at most, not for good.
   */
  AGENTMETER_MONGO_TIMEOUT_MS: wholeNumber(1_000, 600_000).default(60_000),
  /**
   * How long a starting processor waits for Kafka, ClickHouse and MongoDB to answer (each start step is
   * retried with backoff) before it gives up and exits 1. 0: no wait, the first failure ends the start.
   */
  AGENTMETER_STARTUP_WAIT_MS: wholeNumber(0, 3_600_000).default(300_000),
  /** How long the group waits for a silent member before moving its partitions (the broker allows 6 s and up). */
  AGENTMETER_SESSION_TIMEOUT_MS: wholeNumber(6_000, 300_000).default(30_000),
  /** A session costing more than this many times its workflow's average raises a cost_threshold event. */
  AGENTMETER_COST_MULTIPLE: costMultiple.default(2),
  /** How often the processor re-reads workflow averages from ClickHouse for that check. */
  AGENTMETER_COST_AVERAGES_REFRESH_MS: wholeNumber(1, 3_600_000).default(30_000),
  /** Accounts kept in memory per partition; past it the least recently used clean ones are dropped. */
  AGENTMETER_MAX_CACHED_ACCOUNTS: wholeNumber(100, 10_000_000).default(20_000),
  /**
   * Largest budget-state message the processor sends (the broker's message.max.bytes is 1 MiB by
   * default): a record that would make its account's state larger is dead-lettered, RECORD_STORE_REJECTED.
   */
  AGENTMETER_MAX_STATE_MESSAGE_BYTES: wholeNumber(1_024, 8 * 1024 * 1024).default(900 * 1024),
  /**
   * Port of the processor's HTTP endpoint: `/metrics` (Prometheus), `/healthz` and `/readyz` (Kubernetes
   * probes; docs/operations.md). 0 turns the endpoint off (no metrics, no probes).
   */
  AGENTMETER_METRICS_PORT: wholeNumber(0, 65_535).default(9464),
  /** Address that endpoint listens on: 0.0.0.0 (every IPv4 interface), :: (every interface), or one address. */
  AGENTMETER_METRICS_HOST: z
    .string()
    .regex(
      // Labels of letters, digits and inner hyphens, joined by single dots; or an IPv4 or IPv6 address.
      /^(?:(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*|(?=[0-9A-Fa-f:.]*:)[0-9A-Fa-f:.]{2,45})$/,
      "expected a host name or IP address",
    )
    .default("0.0.0.0"),
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
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw invalid(String(issue?.path[0] ?? "?"), env, issue?.message ?? "invalid");
  }
  const config = parsed.data;
  const problem = crossCheck(config);
  if (problem !== undefined) throw invalid(problem.variable, env, problem.message);
  return config;
}

/**
 * A true/false variable outside ConfigSchema (the SDK's AGENTMETER_MOCK and AGENTMETER_STRICT): unset or
 * empty is false, and anything but true, false, 1 or 0 fails as loadConfig does, rather than reading as
 * false and leaving the caller to find out from what false does (a Kafka connection, say).
 */
export function loadFlag(name: string, env: Readonly<Record<string, string | undefined>>): boolean {
  const value = env[name];
  if (value === undefined || value === "") return false;
  const parsed = flag.safeParse(value);
  if (!parsed.success) throw invalid(name, env, parsed.error.issues[0]?.message ?? "invalid");
  return parsed.data;
}

/**
 * loadConfig of the environment with `overrides` (values as Config holds them: numbers, lists,
 * booleans) put over it, so an override is checked as the variable it replaces. An override left
 * undefined means that variable's default.
 */
export function loadConfigWith(
  env: Readonly<Record<string, string | undefined>>,
  overrides: Readonly<Partial<Record<keyof Config, unknown>>>,
): Config {
  const merged: Record<string, string | undefined> = { ...env };
  for (const [name, value] of Object.entries(overrides)) merged[name] = asVariable(value);
  return loadConfig(merged);
}

/** A Config value written back as an environment variable's text. */
function asVariable(value: unknown): string {
  if (value === undefined) return "";
  return Array.isArray(value) ? value.join(",") : String(value);
}

function invalid(
  name: string,
  env: Readonly<Record<string, string | undefined>>,
  message: string,
): AgentmeterError {
  return new AgentmeterError(
    "CONFIG_INVALID",
    `config: ${name}=${shownValue(name, env[name])} is invalid: ${message}`,
    {
      details: { variable: name },
    },
  );
}

/** Rules between variables; the first broken one, naming the variable to change. */
function crossCheck(config: Config): { variable: string; message: string } | undefined {
  const sasl = [config.KAFKA_SASL_MECHANISM, config.KAFKA_SASL_USERNAME, config.KAFKA_SASL_PASSWORD];
  if (sasl.some((value) => value !== undefined) && sasl.some((value) => value === undefined)) {
    const missing = (["KAFKA_SASL_MECHANISM", "KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"] as const).find(
      (name) => config[name] === undefined,
    )!;
    return {
      variable: missing,
      message: "SASL needs KAFKA_SASL_MECHANISM, KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD together",
    };
  }
  if (config.KAFKA_SSL_CA_FILE !== undefined && !config.KAFKA_SSL)
    return { variable: "KAFKA_SSL", message: "KAFKA_SSL_CA_FILE is set, so KAFKA_SSL must be true" };
  const prefixBytes = Buffer.byteLength(config.AGENTMETER_APP_DB_PREFIX, "utf8");
  const maxId = maxEnterpriseIdLength(config);
  if (maxId < 1 || prefixBytes + maxId > MONGODB_DB_NAME_MAX_BYTES) {
    return {
      variable: "AGENTMETER_MAX_ENTERPRISE_ID_LENGTH",
      message: `app databases AGENTMETER_APP_DB_PREFIX (${prefixBytes} bytes) + enterprise id (up to ${maxId}) would reach ${prefixBytes + maxId} bytes, over MongoDB's ${MONGODB_DB_NAME_MAX_BYTES}: shorten the prefix or lower the maximum`,
    };
  }
  for (const variable of ["AGENTMETER_PLATFORM_DB", "AGENTMETER_WORKFLOW_DB"] as const) {
    const id = appIdNaming(config.AGENTMETER_APP_DB_PREFIX, maxId, config[variable]);
    if (id !== undefined)
      return {
        variable,
        message: `it is also the name (ignoring case, as MongoDB compares) of app '${id}''s database under AGENTMETER_APP_DB_PREFIX=${config.AGENTMETER_APP_DB_PREFIX}`,
      };
  }
  const platform = config.AGENTMETER_PLATFORM_DB;
  const workflow = config.AGENTMETER_WORKFLOW_DB;
  if (platform !== workflow && platform.toLowerCase() === workflow.toLowerCase())
    return {
      variable: "AGENTMETER_WORKFLOW_DB",
      message: `differs from AGENTMETER_PLATFORM_DB=${platform} only by case, which MongoDB refuses`,
    };
  return undefined;
}

/**
 * The longest enterprise id whose app database name fits MongoDB's 63 bytes under this prefix:
 * AGENTMETER_MAX_ENTERPRISE_ID_LENGTH if set, else 48 (the id rule's) or what the prefix leaves.
 * A record naming a longer enterprise id is refused before anything is written (see appDatabaseName).
 */
export function maxEnterpriseIdLength(
  config: Pick<Config, "AGENTMETER_APP_DB_PREFIX" | "AGENTMETER_MAX_ENTERPRISE_ID_LENGTH">,
): number {
  return (
    config.AGENTMETER_MAX_ENTERPRISE_ID_LENGTH ??
    Math.min(
      ENTERPRISE_ID_MAX_LENGTH,
      MONGODB_DB_NAME_MAX_BYTES - Buffer.byteLength(config.AGENTMETER_APP_DB_PREFIX, "utf8"),
    )
  );
}

/**
 * The enterprise id (lower case) whose app database `prefix + id` equals `name` ignoring case, as
 * MongoDB compares database names, or undefined when no valid id does.
 */
export function appIdNaming(prefix: string, maxIdLength: number, name: string): string | undefined {
  const p = prefix.toLowerCase();
  const n = name.toLowerCase();
  if (!n.startsWith(p)) return undefined;
  const id = n.slice(p.length);
  return id.length <= maxIdLength && ENTERPRISE_ID_PATTERN.test(id) ? id : undefined;
}

/**
 * Whether two app database prefixes can name the same database (ignoring case): `a + idA` equal to
 * `b + idB` for valid enterprise ids. Only if one prefix begins the other and what is left over can
 * begin an enterprise id.
 */
export function appPrefixesOverlap(a: string, maxA: number, b: string, maxB: number): boolean {
  const [short, long, maxShort] =
    a.length <= b.length
      ? [a.toLowerCase(), b.toLowerCase(), maxA]
      : [b.toLowerCase(), a.toLowerCase(), maxB];
  if (!long.startsWith(short)) return false;
  const rest = long.slice(short.length);
  if (rest === "") return true;
  return /^[a-z0-9][a-z0-9_-]*$/.test(rest) && rest.length + 1 <= maxShort;
}

/** Environment variables that give a child process (a processor, say) the same configuration. */
export function configEnv(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(config)) {
    if (value === undefined) continue;
    env[name] = Array.isArray(value) ? value.join(",") : String(value);
  }
  return env;
}
