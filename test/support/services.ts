/**
 * The one place integration tests get Kafka, MongoDB and ClickHouse from, in this order:
 *   1. env: KAFKA_BROKERS, MONGODB_URI and CLICKHOUSE_URL all set (someone runs their own servers);
 *   2. testcontainers, when a Docker engine answers (laptops, hosted CI);
 *   3. the local stack (deploy/local), started if it is not running (machines without Docker).
 * AGENTMETER_TEST_SERVICES=env|testcontainers|local forces one. A server that is missing or does not
 * answer fails the test run with a message saying which; it is never a silent skip.
 */
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { homedir } from "node:os";
import path from "node:path";
import { MongoClient } from "mongodb";
import { stackUp } from "../../deploy/local/stack.ts";
import { AgentmeterError } from "../../pipeline/errors.ts";

export type ServicesSource = "env" | "testcontainers" | "local";

export interface Services {
  kafkaBrokers: string[];
  mongoUri: string;
  clickhouseUrl: string;
  source: ServicesSource;
}

const ENV_VARS = ["KAFKA_BROKERS", "MONGODB_URI", "CLICKHOUSE_URL"] as const;

// Images for the Docker path. cp-kafka because @testcontainers/kafka drives Confluent's image scripts;
// 8.x is Apache Kafka 4.x in KRaft mode, like the local stack.
const IMAGES = {
  kafka: process.env.AGENTMETER_TC_KAFKA_IMAGE ?? "confluentinc/cp-kafka:8.0.0",
  mongo: process.env.AGENTMETER_TC_MONGO_IMAGE ?? "mongo:7",
  clickhouse: process.env.AGENTMETER_TC_CLICKHOUSE_IMAGE ?? "clickhouse/clickhouse-server:25.8",
};

let memo: Promise<Services> | undefined;

/** Memoized per process: every test file in one process shares one set of servers. */
export function getServices(): Promise<Services> {
  memo ??= resolveServices().catch((error: unknown) => {
    memo = undefined;
    throw error;
  });
  return memo;
}

async function resolveServices(): Promise<Services> {
  const forced = process.env.AGENTMETER_TEST_SERVICES;
  if (forced !== undefined && forced !== "" && !["env", "testcontainers", "local"].includes(forced)) {
    throw new AgentmeterError(
      "CONFIG_INVALID",
      `AGENTMETER_TEST_SERVICES=${JSON.stringify(forced)} is not valid: use env, testcontainers or local`,
    );
  }
  const set = ENV_VARS.filter((name) => (process.env[name] ?? "") !== "");
  if (forced === "env" || (!forced && set.length > 0)) {
    if (set.length < ENV_VARS.length) {
      // Half a configuration is a mistake; silently mixing env servers with others would hide it.
      const missing = ENV_VARS.filter((name) => !set.includes(name));
      throw new AgentmeterError(
        "CONFIG_INVALID",
        `services from env need ${ENV_VARS.join(", ")}; missing ${missing.join(", ")}`,
      );
    }
    const services: Services = {
      kafkaBrokers: (process.env.KAFKA_BROKERS ?? "").split(",").map((b) => b.trim()),
      mongoUri: process.env.MONGODB_URI ?? "",
      clickhouseUrl: process.env.CLICKHOUSE_URL ?? "",
      source: "env",
    };
    await assertReachable(services);
    return services;
  }
  if (forced === "testcontainers" || (!forced && (await dockerEngineAnswers()))) {
    if (forced === "testcontainers" && !(await dockerEngineAnswers())) {
      throw new AgentmeterError(
        "SERVICE_UNAVAILABLE",
        "AGENTMETER_TEST_SERVICES=testcontainers but no Docker engine answers (DOCKER_HOST or /var/run/docker.sock)",
      );
    }
    const services = await startContainers().catch((error: unknown) => {
      if (error instanceof AgentmeterError) throw error;
      throw new AgentmeterError("SERVICE_START_FAILED", `testcontainers failed: ${String(error)}`, {
        cause: error,
      });
    });
    await assertReachable(services);
    return services;
  }
  const endpoints = await stackUp();
  return {
    kafkaBrokers: endpoints.kafkaBrokers,
    mongoUri: endpoints.mongoUri,
    clickhouseUrl: endpoints.clickhouseUrl,
    source: "local",
  };
}

/**
 * Cheap and bounded: a socket file check, then GET /_ping with a short timeout. The docker CLI being
 * installed means nothing (it is here, the engine is not).
 */
export async function dockerEngineAnswers(timeoutMs = 1500): Promise<boolean> {
  const host = process.env.DOCKER_HOST;
  let target: { socketPath: string } | { host: string; port: number } | undefined;
  if (host?.startsWith("unix://")) {
    target = { socketPath: host.slice("unix://".length) };
  } else if (host?.startsWith("tcp://")) {
    const url = new URL(host.replace(/^tcp:/, "http:"));
    target = { host: url.hostname, port: Number(url.port || 2375) };
  } else if (host === undefined || host === "") {
    const candidates = [
      "/var/run/docker.sock",
      path.join(homedir(), ".docker", "run", "docker.sock"),
      ...(process.env.XDG_RUNTIME_DIR ? [path.join(process.env.XDG_RUNTIME_DIR, "docker.sock")] : []),
    ];
    const socketPath = candidates.find((candidate) => existsSync(candidate));
    if (socketPath !== undefined) target = { socketPath };
  }
  if (target === undefined) return false;
  const requestTarget = target;
  return new Promise((resolve) => {
    const request = http.get({ ...requestTarget, path: "/_ping", timeout: timeoutMs }, (response) => {
      response.resume();
      resolve(response.statusCode === 200);
    });
    request.on("timeout", () => {
      request.destroy();
      resolve(false);
    });
    request.on("error", () => resolve(false));
  });
}

async function startContainers(): Promise<Services> {
  // Loaded only here: machines without Docker never pay for (or trip over) testcontainers.
  const { GenericContainer, Wait } = await import("testcontainers");
  const { KafkaContainer } = await import("@testcontainers/kafka");
  const { MongoDBContainer } = await import("@testcontainers/mongodb");
  const failed = (what: string) => (error: unknown) => {
    throw new AgentmeterError("SERVICE_START_FAILED", `testcontainers could not start ${what}`, {
      cause: error,
    });
  };
  // Containers are removed by testcontainers' reaper when this process exits.
  const [kafka, mongo, clickhouse] = await Promise.all([
    new KafkaContainer(IMAGES.kafka).start().catch(failed(IMAGES.kafka)),
    new MongoDBContainer(IMAGES.mongo).start().catch(failed(IMAGES.mongo)),
    new GenericContainer(IMAGES.clickhouse)
      .withExposedPorts(8123)
      // Recent images lock the password-less default user to localhost unless told otherwise.
      .withEnvironment({ CLICKHOUSE_SKIP_USER_SETUP: "1" })
      .withUlimits({ nofile: { soft: 262144, hard: 262144 } })
      .withWaitStrategy(Wait.forHttp("/ping", 8123).forStatusCode(200))
      .withStartupTimeout(120_000)
      .start()
      .catch(failed(IMAGES.clickhouse)),
  ]);
  return {
    kafkaBrokers: [`${kafka.getHost()}:${kafka.getMappedPort(9093)}`],
    // The image runs a one-member replica set announcing its in-container name; talk to it directly.
    mongoUri: `${mongo.getConnectionString()}/?directConnection=true`,
    clickhouseUrl: `http://${clickhouse.getHost()}:${clickhouse.getMappedPort(8123)}`,
    source: "testcontainers",
  };
}

function tcpAnswers(hostPort: string, timeoutMs: number): Promise<boolean> {
  const at = hostPort.lastIndexOf(":");
  const host = hostPort.slice(0, at).replace(/^\[|\]$/g, "");
  const port = Number(hostPort.slice(at + 1));
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Fails with the variable or container that points nowhere, instead of a driver timeout inside some test. */
async function assertReachable(services: Services): Promise<void> {
  const problems: string[] = [];
  const broker = services.kafkaBrokers[0] ?? "";
  if (!(await tcpAnswers(broker, 3000))) problems.push(`Kafka at ${broker} (KAFKA_BROKERS)`);
  const mongo = new MongoClient(services.mongoUri, { serverSelectionTimeoutMS: 5000 });
  try {
    await mongo.db("admin").command({ ping: 1 });
  } catch {
    problems.push(`MongoDB at ${services.mongoUri} (MONGODB_URI)`);
  } finally {
    await mongo.close().catch(() => {});
  }
  try {
    const response = await fetch(new URL("/ping", services.clickhouseUrl), {
      signal: AbortSignal.timeout(5000),
    });
    if (!response.ok) problems.push(`ClickHouse at ${services.clickhouseUrl} (CLICKHOUSE_URL)`);
  } catch {
    problems.push(`ClickHouse at ${services.clickhouseUrl} (CLICKHOUSE_URL)`);
  }
  if (problems.length > 0) {
    throw new AgentmeterError(
      "SERVICE_UNAVAILABLE",
      `services from ${services.source} do not answer: ${problems.join("; ")}`,
    );
  }
}

/**
 * A name no other test (or earlier run) uses, valid as a Kafka topic, a MongoDB database and a ClickHouse
 * identifier: [a-z0-9_] only, at most 48 characters (MongoDB database names stop at 63 bytes).
 */
export function uniqueName(prefix: string): string {
  const clean =
    prefix
      .toLowerCase()
      .replace(/[^a-z0-9_]+/g, "_")
      .replace(/^_+|_+$/g, "")
      .slice(0, 24) || "t";
  // ClickHouse identifiers must not start with a digit unless quoted.
  const head = /^[0-9]/.test(clean) ? `t_${clean}` : clean;
  return `${head}_${Date.now().toString(36)}_${randomBytes(5).toString("hex")}`;
}
