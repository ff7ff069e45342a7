import { homedir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { AgentmeterError } from "../../schemas/errors.ts";

/** Versions are pinned so a cached install is reused until someone bumps them on purpose. */
export const VERSIONS = {
  kafka: "4.4.0",
  log4j: "2.24.3",
  chdbLib: "26.7.3-stable.1",
  ferretdb: "v1.24.2",
} as const;

export type FerretBackend = "postgresql" | "sqlite";

export interface StackConfig {
  /** Installs shared by every clone on the machine. */
  cacheDir: string;
  /** Data, logs and pid files of this clone's stack. */
  homeDir: string;
  kafkaPort: number;
  kafkaControllerPort: number;
  clickhouseHttpPort: number;
  clickhouseTcpPort: number;
  mongoPort: number;
  pgPort: number;
  ferretBackend: FerretBackend;
  kafkaHeapMb: number;
  /** Broker nodes: 1 (the default) or a three-node KRaft cluster, replicating every topic three times. */
  kafkaNodes: 1 | 3;
}

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");

const PORT_ERROR = "expected a port number, 1-65535";
const port = z
  .string()
  .regex(/^\d{1,5}$/, PORT_ERROR)
  .transform(Number)
  .pipe(z.number().int().min(1, PORT_ERROR).max(65535, PORT_ERROR));

// Defaults sit away from the usual ports so a developer's own Kafka/ClickHouse/Mongo/Postgres can keep running.
const ENV_SCHEMA = {
  AGENTMETER_CACHE: z
    .string()
    .min(1)
    .default(path.join(homedir(), ".cache", "agentmeter")),
  AGENTMETER_HOME: z.string().min(1).default(path.join(REPO_ROOT, ".agentmeter")),
  AGENTMETER_KAFKA_PORT: port.default(19092),
  AGENTMETER_KAFKA_CONTROLLER_PORT: port.default(19093),
  AGENTMETER_CLICKHOUSE_HTTP_PORT: port.default(18123),
  AGENTMETER_CLICKHOUSE_TCP_PORT: port.default(19000),
  AGENTMETER_MONGO_PORT: port.default(27117),
  AGENTMETER_PG_PORT: port.default(15433),
  AGENTMETER_FERRETDB_BACKEND: z.enum(["postgresql", "sqlite"]).default("postgresql"),
  AGENTMETER_KAFKA_HEAP_MB: z
    .string()
    .regex(/^\d+$/, "expected megabytes, 128-8192")
    .transform(Number)
    .pipe(z.number().int().min(128, "expected megabytes, 128-8192").max(8192, "expected megabytes, 128-8192"))
    .default(448),
  AGENTMETER_KAFKA_NODES: z.enum(["1", "3"], "expected 1 or 3").default("1"),
} as const;

type EnvKey = keyof typeof ENV_SCHEMA;

function read<K extends EnvKey>(env: NodeJS.ProcessEnv, key: K): z.output<(typeof ENV_SCHEMA)[K]> {
  const raw = env[key];
  // An empty variable means "not set": CI templates often export VAR= for optional settings.
  const value = raw === undefined || raw === "" ? undefined : raw;
  const parsed = ENV_SCHEMA[key].safeParse(value);
  if (!parsed.success) {
    const why = parsed.error.issues[0]?.message ?? "invalid";
    throw new AgentmeterError("CONFIG_INVALID", `${key}=${JSON.stringify(raw)} is not valid: ${why}`, {
      details: { variable: key, value: raw },
    });
  }
  return parsed.data as z.output<(typeof ENV_SCHEMA)[K]>;
}

export function loadStackConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  const config: StackConfig = {
    cacheDir: path.resolve(read(env, "AGENTMETER_CACHE")),
    homeDir: path.resolve(read(env, "AGENTMETER_HOME")),
    kafkaPort: read(env, "AGENTMETER_KAFKA_PORT"),
    kafkaControllerPort: read(env, "AGENTMETER_KAFKA_CONTROLLER_PORT"),
    clickhouseHttpPort: read(env, "AGENTMETER_CLICKHOUSE_HTTP_PORT"),
    clickhouseTcpPort: read(env, "AGENTMETER_CLICKHOUSE_TCP_PORT"),
    mongoPort: read(env, "AGENTMETER_MONGO_PORT"),
    pgPort: read(env, "AGENTMETER_PG_PORT"),
    ferretBackend: read(env, "AGENTMETER_FERRETDB_BACKEND"),
    kafkaHeapMb: read(env, "AGENTMETER_KAFKA_HEAP_MB"),
    kafkaNodes: read(env, "AGENTMETER_KAFKA_NODES") === "3" ? 3 : 1,
  };
  const ports: [EnvKey, number][] = [
    ["AGENTMETER_KAFKA_PORT", config.kafkaPort],
    ["AGENTMETER_KAFKA_CONTROLLER_PORT", config.kafkaControllerPort],
    ["AGENTMETER_CLICKHOUSE_HTTP_PORT", config.clickhouseHttpPort],
    ["AGENTMETER_CLICKHOUSE_TCP_PORT", config.clickhouseTcpPort],
    ["AGENTMETER_MONGO_PORT", config.mongoPort],
    ["AGENTMETER_PG_PORT", config.pgPort],
  ];
  const seen = new Map<number, EnvKey>();
  for (const [key, value] of ports) {
    const other = seen.get(value);
    if (other !== undefined) {
      throw new AgentmeterError(
        "CONFIG_INVALID",
        `${key}=${value} is not valid: ${other} uses the same port`,
        {
          details: { variable: key, value },
        },
      );
    }
    seen.set(value, key);
  }
  return config;
}

export interface StackEndpoints {
  kafkaBrokers: string[];
  mongoUri: string;
  clickhouseUrl: string;
  /** The PostgreSQL behind FerretDB; undefined with the sqlite backend. */
  postgresUrl: string | undefined;
}

export function endpointsOf(config: StackConfig): StackEndpoints {
  return {
    kafkaBrokers: Array.from(
      { length: config.kafkaNodes },
      (_, i) => `127.0.0.1:${config.kafkaPort + 2 * i}`,
    ),
    mongoUri: `mongodb://127.0.0.1:${config.mongoPort}/`,
    clickhouseUrl: `http://127.0.0.1:${config.clickhouseHttpPort}`,
    postgresUrl:
      config.ferretBackend === "postgresql"
        ? `postgres://postgres@127.0.0.1:${config.pgPort}/ferretdb`
        : undefined,
  };
}

/** The line `up` prints, in the variable names getServices() and the CLI read. */
export function connectionEnv(endpoints: StackEndpoints): string {
  return `KAFKA_BROKERS=${endpoints.kafkaBrokers.join(",")} MONGODB_URI=${endpoints.mongoUri} CLICKHOUSE_URL=${endpoints.clickhouseUrl}`;
}
