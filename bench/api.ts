/**
 * `npm run bench:api`: records per second into the input topic through `POST /v1/records` beside the
 * SDK's producer, in one run on the running stack (not a test; nothing is asserted). Both end at the
 * same place, acknowledged by the broker with acks=all: the API adds HTTP, JSON parsing and per-record
 * validation in a server process (`agentmeter serve`, spawned as it runs in production) in front of
 * the same batching producer.
 *   BENCH_RECORDS (50,000), BENCH_BATCH records per request (500), BENCH_CONCURRENCY requests in flight (8).
 * Every run uses namespaces of its own, removed at the end unless BENCH_KEEP=1.
 */
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { performance } from "node:perf_hooks";
import { createApiKey } from "../pipeline/api/keys.ts";
import type { Config } from "../pipeline/config.ts";
import { createLogger } from "../pipeline/log.ts";
import type { IngestResponse } from "../schemas/api.ts";
import { Agentmeter, type RecordInput } from "../sdk/index.ts";
import { dropNamespaces, keepData } from "./cleanup.ts";
import { benchNamespace, benchServers } from "./namespace.ts";

const RECORDS = Number(process.env.BENCH_RECORDS ?? 50_000);
const BATCH = Number(process.env.BENCH_BATCH ?? 500);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);
const logger = createLogger("warn", "bench");

const namespaces: Config[] = [];

const servers = await benchServers();

function namespace(name: string): Config {
  const config = benchNamespace(servers, name, { LOG_LEVEL: "warn" });
  namespaces.push(config);
  return config;
}

function usage(i: number): RecordInput {
  const user = `user-${i % 500}`;
  return {
    type: "usage",
    record_id: `r-${i}`,
    level: "app_usage",
    enterprise_id: `bench-app-${i % 7}`,
    mozaiks_user_id: "bench-creator",
    platform_user_id: user,
    workflow_type: "chat_interaction",
    workflow_name: "chat",
    session_id: `s-${user}`,
    chat_id: `c-${user}`,
    agent_usage: { CustomerAgent: { prompt_tokens: 10 + (i % 90), completion_tokens: 5 } },
    occurred_at: new Date().toISOString(),
  };
}

function envOf(config: Config): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(config)) {
    if (value !== undefined) env[name] = Array.isArray(value) ? value.join(",") : String(value);
  }
  return env;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(),
      );
    });
  });
}

async function sdkRate(): Promise<number> {
  const meter = await Agentmeter.connect({ config: namespace("sdk"), strict: true, logger });
  await meter.send(usage(-1)); // metadata and producer id outside the timing
  const started = performance.now();
  await Promise.all(Array.from({ length: RECORDS }, (_, i) => meter.send(usage(i))));
  const seconds = (performance.now() - started) / 1000;
  await meter.close();
  return RECORDS / seconds;
}

async function apiRate(batch: number, records: number): Promise<number> {
  const config = namespace(`api${batch}`);
  const key = createApiKey("bench", { kind: "ingest" });
  const port = await freePort();
  const server = spawn(process.execPath, ["bin/agentmeter.mjs", "serve"], {
    env: {
      ...process.env,
      ...envOf(config),
      AGENTMETER_API_KEYS: key.entry,
      AGENTMETER_API_PORT: String(port),
      AGENTMETER_API_MAX_BATCH: String(Math.max(batch, 1)),
    },
    stdio: ["ignore", "ignore", "inherit"],
  });
  const base = `http://127.0.0.1:${port}`;
  const post = async (body: unknown) => {
    const response = await fetch(`${base}/v1/records`, {
      method: "POST",
      headers: { authorization: `Bearer ${key.secret}`, "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    const answer = (await response.json()) as IngestResponse;
    if (response.status !== 202 || answer.rejected > 0)
      throw new Error(`answer ${response.status}: ${JSON.stringify(answer).slice(0, 300)}`);
  };
  try {
    for (
      let i = 0;
      !(await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      ));
      i++
    ) {
      if (i > 300) throw new Error("agentmeter serve did not start");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await post(usage(-1));
    const bodies: unknown[] = [];
    for (let start = 0; start < records; start += batch) {
      const slice = Array.from({ length: Math.min(batch, records - start) }, (_, i) => usage(start + i));
      bodies.push(batch === 1 ? slice[0] : slice);
    }
    let next = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < bodies.length) await post(bodies[next++]);
      }),
    );
    return records / ((performance.now() - started) / 1000);
  } finally {
    server.kill("SIGTERM");
    await new Promise((resolve) => server.once("exit", resolve));
  }
}

const rate = (perSecond: number) => `${Math.round(perSecond).toLocaleString("en-US")} records/s`;
try {
  const sdk = await sdkRate();
  const api = await apiRate(BATCH, RECORDS);
  const single = await apiRate(1, Math.min(RECORDS, 5_000));
  process.stdout.write(
    [
      `records: ${RECORDS.toLocaleString("en-US")}, acknowledged with acks=all by the broker`,
      `  SDK producer (in process)                               ${rate(sdk)}`,
      `  POST /v1/records, ${BATCH} per request, ${CONCURRENCY} in flight         ${rate(api)}  (${((api / sdk) * 100).toFixed(0)}% of the SDK's)`,
      `  POST /v1/records, 1 per request, ${CONCURRENCY} in flight (${Math.min(RECORDS, 5_000)})    ${rate(single)}`,
      "",
    ].join("\n"),
  );
} finally {
  if (!keepData()) await dropNamespaces(namespaces);
}
