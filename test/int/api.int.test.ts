import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import type { FastifyInstance } from "fastify";
import { type BudgetStates, startBudgetView } from "../../pipeline/api/budgets.ts";
import { loadServeConfig } from "../../pipeline/api/config.ts";
import { IngestProducer } from "../../pipeline/api/ingest-producer.ts";
import { createApiKey } from "../../pipeline/api/keys.ts";
import { AppOwnership } from "../../pipeline/api/ownership.ts";
import { ApiProblem } from "../../pipeline/api/problem.ts";
import { appUsage } from "../../pipeline/api/reads/usage.ts";
import { buildApi } from "../../pipeline/api/server.ts";
import { ReadStores } from "../../pipeline/api/stores.ts";
import { type AccountState, budgetStateOf, parseBillingConfig } from "../../pipeline/core/index.ts";
import { createLogger } from "../../pipeline/log.ts";
import type {
  AccountResponse,
  AppTopAgentsResponse,
  CreatorAppsResponse,
  CreatorTopAgentsResponse,
  IngestResponse,
  PausedChatsResponse,
  StatementResponse,
  UsageResponse,
} from "../../schemas/api.ts";
import type { InputRecordJson, UsageOutcome } from "../../schemas/index.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import { expectedRun } from "../support/expected.ts";
import { TestPipeline } from "../support/harness.ts";
import { configEnv } from "../support/pipeline.ts";
import { requireTool, skipWithout } from "../support/tools.ts";

// --- the workload: two creators, three apps, end users on trial, paid, and paused ----------------

const HOUR = 3_600_000;
const now = Date.now();
/** A month that lies within the processor's event-time bound (35 days back) for at least a day. */
const month = new Date(now - 2 * HOUR).toISOString().slice(0, 7);
const monthStart = Date.parse(`${month}-01T00:00:00Z`);
const monthEnd = Date.UTC(Number(month.slice(0, 4)), Number(month.slice(5, 7)), 1);
const start = Math.max(monthStart, now - 30 * 24 * HOUR);
const end = Math.min(now - 60_000, monthEnd - 1);
/** The whole month as a usage query's range. */
const monthRange = `from=${new Date(monthStart).toISOString()}&to=${new Date(monthEnd).toISOString()}`;
/** The price of the workload's model changes half way through: the statement spans both prices. */
const priceChange = new Date(Math.floor((start + (end - start) / 2) / HOUR) * HOUR).toISOString();

/** The billing config as a file would hold it: the processor, the API and `agentmeter compute` get the same. */
const billingJson = {
  app_trial_tokens: { default: 3_000 },
  // Every app's creator is pinned by the operator; ada-soon has no usage yet (no Enterprises document).
  apps: {
    "ada-notes": { creator: "ada" },
    "ada-chat": { creator: "ada" },
    "ada-soon": { creator: "ada" },
    "bob-bot": { creator: "bob" },
  },
  price_book: {
    entries: [
      {
        price_id: "default-1",
        model: "default",
        effective_from: "2024-01-01T00:00:00Z",
        prompt_micros_per_mtok: 30_000_000,
        completion_micros_per_mtok: 30_000_000,
      },
      {
        price_id: "api-model-1",
        model: "api-model",
        effective_from: "2024-01-01T00:00:00Z",
        prompt_micros_per_mtok: 3_000_000,
        completion_micros_per_mtok: 9_000_000,
      },
      {
        price_id: "api-model-2",
        model: "api-model",
        effective_from: priceChange,
        prompt_micros_per_mtok: 5_000_000,
        completion_micros_per_mtok: 17_000_000,
      },
    ],
  },
};
const billing = parseBillingConfig(billingJson);

const CREATORS = { ada: ["ada-notes", "ada-chat"], bob: ["bob-bot"] } as const;
/** ada's apps as the API lists them: the used ones and the pinned one nobody has used yet. */
const ADA_APPS = [...CREATORS.ada, "ada-soon"].sort();
const USERS = ["u1", "u2", "u3"];
const TURNS = 6;
/** 33 days back: always a month before `month`, within the processor's 35-day event-time bound. */
const previousMonth = new Date(now - 33 * 24 * HOUR);

function at(fraction: number): string {
  return new Date(start + Math.floor((end - start) * fraction)).toISOString();
}

function topUp(creator: string, app: string, user: string, id: string): InputRecordJson {
  return {
    type: "credit",
    kind: "top_up",
    record_id: id,
    level: "app_usage",
    enterprise_id: app,
    mozaiks_user_id: creator,
    platform_user_id: user,
    tokens: 20_000,
    amount_micros: "200000",
    occurred_at: at(0),
  };
}

function usage(creator: string, app: string, user: string, turn: number): InputRecordJson {
  return {
    type: "usage",
    record_id: `${app}-${user}-${turn}`,
    level: "app_usage",
    enterprise_id: app,
    mozaiks_user_id: creator,
    platform_user_id: user,
    workflow_type: "chat",
    workflow_name: turn % 2 === 0 ? "writer" : "planner",
    session_id: `${user}-s`,
    chat_id: `${user}-chat`,
    model: "api-model",
    agent_usage: {
      PlannerAgent: {
        prompt_tokens: 300 + turn * 7,
        completion_tokens: 200,
        response_time_ms: 100 + turn * 10,
        message_count: 1,
      },
      WriterAgent: {
        prompt_tokens: 150,
        completion_tokens: 180 + turn,
        response_time_ms: 400,
        message_count: 2,
      },
    },
    occurred_at: at((turn + 1) / (TURNS + 1)),
  };
}

/** Every valid record of the run: u1 and u2 of each app are topped up (paid usage, billed 70/30); u3 runs out of trial and is paused. */
function workload(): { credits: InputRecordJson[]; usages: InputRecordJson[] } {
  const credits: InputRecordJson[] = [];
  const usages: InputRecordJson[] = [];
  for (const [creator, apps] of Object.entries(CREATORS)) {
    for (const app of apps) {
      for (const user of USERS) {
        if (user !== "u3") credits.push(topUp(creator, app, user, `${app}-${user}-topup`));
        for (let turn = 0; turn < TURNS; turn++) usages.push(usage(creator, app, user, turn));
      }
    }
  }
  // u4 of ada-notes pays for a large record of an earlier month: billed in this run, in no statement of `month`.
  credits.push({
    ...topUp("ada", "ada-notes", "u4", "ada-notes-u4-topup"),
    occurred_at: previousMonth.toISOString(),
  });
  const old = usage("ada", "ada-notes", "u4", 0) as Extract<InputRecordJson, { type: "usage" }>;
  usages.push({
    ...old,
    record_id: "ada-notes-u4-old",
    agent_usage: {
      PlannerAgent: { prompt_tokens: 2_500, completion_tokens: 1_500, response_time_ms: 90 },
      WriterAgent: { prompt_tokens: 700, completion_tokens: 900 },
    },
    occurred_at: new Date(previousMonth.getTime() + 60_000).toISOString(),
  });
  return { credits, usages };
}

// --- HTTP helpers --------------------------------------------------------------------------------

interface Answer<T> {
  status: number;
  body: T;
  text: string;
  type: string;
}

async function call<T>(base: string, path: string, key?: string, body?: unknown): Promise<Answer<T>> {
  const headers: Record<string, string> = {};
  if (key !== undefined) headers.authorization = `Bearer ${key}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  const response = await fetch(`${base}${path}`, {
    method: body === undefined ? "GET" : "POST",
    headers,
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  const type = response.headers.get("content-type") ?? "";
  return {
    status: response.status,
    text,
    type,
    body: (type.includes("json") ? JSON.parse(text) : text) as T,
  };
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

const sum = (values: bigint[]) => values.reduce((a, b) => a + b, 0n);

/** A usage outcome as `agentmeter compute` prints it (money as decimal strings). */
interface ComputedOutcome {
  kind: "usage_outcome";
  level: string;
  enterprise_id: string;
  mozaiks_user_id: string;
  occurred_at: string;
  billed_micros: string;
  creator_share_micros: string;
  platform_fee_micros: string;
  price_ids: string[];
}

/**
 * `agentmeter compute` (the CLI, in its own process) over the records, with the same billing config
 * file: the statement's oracle. Exit code 0: every record took effect.
 */
async function computeOffline(input: readonly InputRecordJson[]): Promise<{
  outputs: ({ kind: string } | ComputedOutcome)[];
  creators: { mozaiks_user_id: string; earnings_micros: string }[];
}> {
  const dir = await mkdtemp(join(tmpdir(), "agentmeter-api-compute-"));
  try {
    const recordsFile = join(dir, "records.jsonl");
    const configFile = join(dir, "billing.json");
    await writeFile(recordsFile, `${input.map((r) => JSON.stringify(r)).join("\n")}\n`);
    await writeFile(configFile, JSON.stringify(billingJson));
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ["bin/agentmeter.mjs", "compute", recordsFile, "--config", configFile],
      { maxBuffer: 256 * 1024 * 1024 },
    );
    return JSON.parse(stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
const inMonth = (iso: string) => iso.slice(0, 7) === month;

// --- the suite -----------------------------------------------------------------------------------

describe("agentmeter serve on the real servers", () => {
  let pipeline: TestPipeline;
  let app: FastifyInstance;
  let producer: IngestProducer;
  let stores: ReadStores;
  let budgets: BudgetStates;
  let base: string;
  const logLines: string[] = [];
  const keys = {
    admin: createApiKey("admin", { kind: "admin" }),
    ingest: createApiKey("ingest", { kind: "ingest" }),
    read: createApiKey("read", { kind: "read" }),
    ada: createApiKey("ada", { kind: "creator", mozaiksUserId: "ada" }),
    bob: createApiKey("bob", { kind: "creator", mozaiksUserId: "bob" }),
    cara: createApiKey("cara", { kind: "creator", mozaiksUserId: "cara" }),
    dan: createApiKey("dan", { kind: "creator", mozaiksUserId: "dan" }),
  };
  const keyEnv = Object.values(keys)
    .map((key) => key.entry)
    .join(",");
  const { credits, usages } = workload();
  const records = [...credits, ...usages];
  const expected = expectedRun(records, billing);
  const outcomes = expected.outputs.filter(
    (o): o is UsageOutcome & { seq?: unknown } => o.kind === "usage_outcome",
  );

  before(async () => {
    pipeline = await TestPipeline.create({ billing });
    await pipeline.startProcessor();
    const config = loadServeConfig({
      ...configEnv(pipeline.config),
      AGENTMETER_API_KEYS: keyEnv,
      AGENTMETER_API_MAX_BATCH: "50",
    });
    const logs = new PassThrough();
    logs.on("data", (chunk: Buffer) => logLines.push(chunk.toString()));
    const logger = createLogger("info", "api-test", logs);
    producer = await IngestProducer.connect(config.pipeline, logger);
    budgets = await startBudgetView(config.pipeline, logger);
    stores = ReadStores.open(config.pipeline, logger);
    const owners = new AppOwnership(billing.apps, stores.layout, config.serve.AGENTMETER_API_APP_OWNERS);
    app = await buildApi({
      pipeline: config.pipeline,
      settings: config.serve,
      producer,
      stores,
      owners,
      budgets,
      billing,
      logger,
    });
    base = await app.listen({ host: "127.0.0.1", port: 0 });
  });

  after(async () => {
    await app?.close();
    await producer?.close();
    await budgets?.stop();
    await stores?.close();
    await pipeline?.close();
  });

  describe("authentication", () => {
    it("answers 401 without a key or with a wrong one, 403 for a key without the route's access, as JSON", async () => {
      const none = await call<{ error: { code: string } }>(base, "/v1/records", undefined, usages[0]);
      assert.equal(none.status, 401);
      assert.equal(none.body.error.code, "UNAUTHENTICATED");
      const wrong = await call<{ error: { code: string } }>(base, "/v1/creators/ada/apps", "amk_not-a-key");
      assert.equal(wrong.status, 401);
      assert.match(wrong.type, /application\/json/);
      const readOnly = await call<{ error: { code: string } }>(
        base,
        "/v1/records",
        keys.read.secret,
        usages[0],
      );
      assert.equal(readOnly.status, 403);
      assert.equal(readOnly.body.error.code, "FORBIDDEN");
      const ingestOnly = await call<{ error: { code: string } }>(
        base,
        "/v1/creators/ada/apps",
        keys.ingest.secret,
      );
      assert.equal(ingestOnly.status, 403);
    });

    it("validates only after authenticating: a malformed body without a key is a 401, not a 400", async () => {
      const answer = await call<{ error: { code: string } }>(base, "/v1/apps/ADA!/usage?from=x", undefined);
      assert.equal(answer.status, 401);
    });

    it("never writes a presented secret to the log", () => {
      const log = logLines.join("");
      for (const key of Object.values(keys)) assert.ok(!log.includes(key.secret), "a secret reached the log");
      assert.ok(!log.includes("amk_not-a-key"));
    });
  });

  describe("ingest", () => {
    it("accepts a valid batch with 202 and one result per record, only after the broker acknowledged it", async () => {
      const answer = await call<IngestResponse>(base, "/v1/records", keys.admin.secret, credits);
      assert.equal(answer.status, 202);
      assert.equal(answer.body.accepted, credits.length);
      assert.deepEqual(
        answer.body.results.map((r) => r.status),
        credits.map(() => "accepted"),
      );
    });

    it("rejects an invalid single record with its code and field path", async () => {
      const bad = {
        ...usages[0]!,
        record_id: "bad-1",
        agent_usage: { PlannerAgent: { prompt_tokens: -1, completion_tokens: 1 } },
      };
      const answer = await call<IngestResponse>(base, "/v1/records", keys.ingest.secret, bad);
      assert.equal(answer.status, 202);
      assert.equal(answer.body.accepted, 0);
      const [result] = answer.body.results;
      assert.equal(result?.status, "rejected");
      assert.ok(result?.status === "rejected");
      assert.equal(result.code, "RECORD_INVALID");
      assert.deepEqual(result.fields, ["agent_usage.PlannerAgent.prompt_tokens"]);
      assert.equal(result.record_id, "bad-1");
    });

    it("in a mixed batch accepts the valid records and rejects the rest, each by index; credits need an admin key", async () => {
      // The usage records go in batches of at most 50 (AGENTMETER_API_MAX_BATCH) with bad ones between them.
      const credit = { ...credits[0]!, record_id: "credit-by-ingest-key" };
      let accepted = 0;
      for (let from = 0; from < usages.length; from += 40) {
        const batch: unknown[] = [...usages.slice(from, from + 40)];
        batch.splice(1, 0, { type: "usage", level: "app_usage" }, credit, {
          ...usages[0],
          model: "no such!",
        });
        const answer = await call<IngestResponse>(base, "/v1/records", keys.ingest.secret, batch);
        assert.equal(answer.status, 202);
        const rejected = answer.body.results.filter((r) => r.status === "rejected");
        assert.deepEqual(
          rejected.map((r) => [r.index, r.status === "rejected" ? r.code : ""]),
          [
            [1, "RECORD_INVALID"],
            [2, "RECORD_UNAUTHORIZED"],
            [3, "RECORD_INVALID"],
          ],
        );
        const modelField = rejected[2]?.status === "rejected" ? rejected[2].fields : [];
        assert.deepEqual(modelField, ["model"]);
        accepted += answer.body.accepted;
      }
      assert.equal(accepted, usages.length);
    });

    it("refuses a batch over the configured size, and a body that is not JSON, with 400 and the field", async () => {
      const tooMany = await call<{ error: { code: string; fields: string[] } }>(
        base,
        "/v1/records",
        keys.ingest.secret,
        Array.from({ length: 51 }, () => usages[0]),
      );
      assert.equal(tooMany.status, 400);
      assert.deepEqual(tooMany.body.error.fields, ["body"]);
      const response = await fetch(`${base}/v1/records`, {
        method: "POST",
        headers: { authorization: `Bearer ${keys.ingest.secret}`, "content-type": "application/json" },
        body: "{not json",
      });
      assert.equal(response.status, 400);
      const body = (await response.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, "REQUEST_INVALID");
      assert.doesNotMatch(body.error.message, /at .*\.js|node_modules/);
    });

    it("the accepted records reach the processor: every store holds what the billing core computes", async () => {
      await pipeline.caughtUp();
      await pipeline.assertStoresMatch(records);
    });
  });

  describe("reads equal what the billing core computes", () => {
    const accountOf = (key: string) => expected.state.accounts[key] as AccountState;

    it("an end user's account, and its budget state from the state topic, equal to MongoDB's", async () => {
      for (const user of USERS) {
        // The view follows the topic a moment behind the processor: wait until it holds the final state.
        let answer = await call<AccountResponse>(
          base,
          `/v1/accounts/app_usage/ada-notes/${user}`,
          keys.ada.secret,
        );
        for (let i = 0; answer.body.state_topic?.agrees_with_mongodb !== true && i < 100; i++) {
          await new Promise((resolve) => setTimeout(resolve, 100));
          answer = await call<AccountResponse>(
            base,
            `/v1/accounts/app_usage/ada-notes/${user}`,
            keys.ada.secret,
          );
        }
        assert.equal(answer.status, 200, answer.text);
        assert.equal(answer.body.budget_source, "state_topic");
        assert.deepEqual(
          { ...answer.body.state_topic, age_ms: 0 },
          { caught_up: true, known: true, age_ms: 0, agrees_with_mongodb: true },
        );
        const core = accountOf(
          accountKeyOf({
            level: "app_usage",
            enterprise_id: "ada-notes",
            mozaiks_user_id: "ada",
            platform_user_id: user,
          }),
        );
        assert.equal(answer.body.tokens_used, core.tokens_used);
        assert.equal(answer.body.billed.micros, core.billed_micros.toString());
        assert.equal(answer.body.creator_share.micros, core.creator_share_micros.toString());
        assert.equal(answer.body.budget.can_continue, user !== "u3");
        assert.equal(answer.body.budget.paused_chats.length, user === "u3" ? 1 : 0);
        assert.deepEqual(answer.body.budget, budgetStateOf(core), "the topic's state is the core's");
      }
    });

    it("an app's usage per day, per workflow, per agent, per model and per end user", async () => {
      const range = monthRange;
      const mine = outcomes.filter((o) => o.enterprise_id === "ada-notes" && inMonth(o.occurred_at));

      const byMonth = await call<UsageResponse>(
        base,
        `/v1/apps/ada-notes/usage?${range}&window=month`,
        keys.read.secret,
      );
      assert.equal(byMonth.status, 200, byMonth.text);
      assert.equal(byMonth.body.rows.length, 1);
      assert.equal(
        byMonth.body.rows[0]?.tokens,
        mine.reduce((n, o) => n + o.tokens_used, 0),
      );
      assert.equal(byMonth.body.rows[0]?.billed?.micros, sum(mine.map((o) => o.billed_micros)).toString());
      assert.equal(
        byMonth.body.rows[0]?.creator_share?.micros,
        sum(mine.map((o) => o.creator_share_micros)).toString(),
      );

      const byDay = await call<UsageResponse>(
        base,
        `/v1/apps/ada-notes/usage?${range}&window=day`,
        keys.read.secret,
      );
      const days = new Map<string, bigint>();
      for (const o of mine)
        days.set(o.occurred_at.slice(0, 10), (days.get(o.occurred_at.slice(0, 10)) ?? 0n) + o.cost_micros);
      assert.deepEqual(
        byDay.body.rows.map((r) => [r.bucket.slice(0, 10), r.cost?.micros]),
        [...days.entries()].sort().map(([day, cost]) => [day, cost.toString()]),
      );

      const byUser = await call<UsageResponse>(
        base,
        `/v1/apps/ada-notes/usage?${range}&window=month&group_by=end_user`,
        keys.read.secret,
      );
      assert.deepEqual(
        byUser.body.rows.map((r) => [r.group, r.billed?.micros]),
        USERS.map((user) => [
          user,
          sum(mine.filter((o) => o.platform_user_id === user).map((o) => o.billed_micros)).toString(),
        ]),
      );

      // An answer larger than the row cap is refused whole, never cut short.
      const query = {
        from: new Date(monthStart).toISOString(),
        to: new Date(monthEnd).toISOString(),
        window: "month",
        group_by: "end_user",
        level: "app_usage",
      } as const;
      const capped = appUsage(stores.clickhouse, stores.database, "ada-notes", query, null, USERS.length - 1);
      await assert.rejects(
        capped,
        (error: unknown) => error instanceof ApiProblem && error.code === "REQUEST_INVALID",
      );
      const whole = await appUsage(
        stores.clickhouse,
        stores.database,
        "ada-notes",
        query,
        null,
        USERS.length,
      );
      assert.deepEqual(
        whole.rows.map((r) => r.group),
        byUser.body.rows.map((r) => r.group),
      );

      const byWorkflow = await call<UsageResponse>(
        base,
        `/v1/apps/ada-notes/usage?${range}&window=month&group_by=workflow`,
        keys.read.secret,
      );
      assert.deepEqual(
        byWorkflow.body.rows.map((r) => [r.group, r.tokens]),
        ["planner", "writer"].map((w) => [
          w,
          mine.filter((o) => o.workflow_name === w).reduce((n, o) => n + o.tokens_used, 0),
        ]),
      );

      const byAgent = await call<UsageResponse>(
        base,
        `/v1/apps/ada-notes/usage?${range}&window=month&group_by=agent`,
        keys.read.secret,
      );
      const agentTokens = (name: string) =>
        mine.reduce(
          (n, o) => n + (o.agents[name]?.prompt_tokens ?? 0) + (o.agents[name]?.completion_tokens ?? 0),
          0,
        );
      assert.deepEqual(
        byAgent.body.rows.map((r) => [r.group, r.tokens, r.billed]),
        [
          ["PlannerAgent", agentTokens("PlannerAgent"), null],
          ["WriterAgent", agentTokens("WriterAgent"), null],
        ],
      );
      const byModel = await call<UsageResponse>(
        base,
        `/v1/apps/ada-notes/usage?${range}&window=month&group_by=model`,
        keys.read.secret,
      );
      assert.deepEqual(
        byModel.body.rows.map((r) => [r.group, r.tokens]),
        [["api-model", mine.reduce((n, o) => n + o.tokens_used, 0)]],
      );
    });

    it("top agents by cost: the records' cost shared by tokens, exactly; by response time: average and p95", async () => {
      /** The attribution the docs state, from the core's outcomes: floors, remainder to the most tokens. */
      const attributed = (of: UsageOutcome[]) => {
        const agents = new Map<
          string,
          { records: number; tokens: number; cost: bigint; billed: bigint; times: number[]; answers: number }
        >();
        for (const o of of) {
          const names = Object.keys(o.agents).sort();
          // Every token class counts: the agents' tokens add up to the record's tokens_used.
          const weights = names.map((n) => {
            const a = o.agents[n]!;
            return BigInt(
              a.prompt_tokens +
                a.completion_tokens +
                (a.cached_prompt_tokens ?? 0) +
                (a.reasoning_tokens ?? 0) +
                (a.audio_tokens ?? 0),
            );
          });
          assert.equal(
            weights.reduce((a, b) => a + b, 0n),
            BigInt(o.tokens_used),
          );
          const total = weights.reduce((a, b) => a + b, 0n);
          let largest = 0;
          weights.forEach((w, i) => {
            if (w > weights[largest]!) largest = i;
          });
          const split = (amount: bigint) => {
            const parts = weights.map((w) => (amount * w) / total);
            parts[largest]! += amount - parts.reduce((a, b) => a + b, 0n);
            return parts;
          };
          const [cost, billed] = [split(o.cost_micros), split(o.billed_micros)];
          names.forEach((name, i) => {
            const seen = agents.get(name) ?? {
              records: 0,
              tokens: 0,
              cost: 0n,
              billed: 0n,
              times: [],
              answers: 0,
            };
            seen.records++;
            seen.tokens += Number(weights[i]);
            seen.cost += cost[i]!;
            seen.billed += billed[i]!;
            const time = o.agents[name]!.response_time_ms;
            if (time !== null && time !== undefined) seen.times.push(time);
            seen.answers += o.agents[name]!.message_count ?? 0;
            agents.set(name, seen);
          });
        }
        return agents;
      };
      const mine = outcomes.filter((o) => o.enterprise_id === "ada-notes" && inMonth(o.occurred_at));
      const expectedAgents = attributed(mine);
      const byCost = await call<AppTopAgentsResponse>(
        base,
        `/v1/apps/ada-notes/agents/top?${monthRange}`,
        keys.ada.secret,
      );
      assert.equal(byCost.status, 200, byCost.text);
      assert.equal(byCost.body.by, "cost");
      assert.deepEqual(
        byCost.body.agents.map((a) => [a.agent, a.records, a.tokens, a.cost.micros, a.billed.micros]),
        [...expectedAgents.entries()]
          .sort((a, b) => (b[1].cost > a[1].cost ? 1 : b[1].cost < a[1].cost ? -1 : a[0] < b[0] ? -1 : 1))
          .map(([name, a]) => [name, a.records, a.tokens, a.cost.toString(), a.billed.toString()]),
      );
      const monthly = await call<UsageResponse>(
        base,
        `/v1/apps/ada-notes/usage?${monthRange}&window=month`,
        keys.ada.secret,
      );
      assert.equal(
        sum(byCost.body.agents.map((a) => BigInt(a.cost.micros))).toString(),
        monthly.body.rows[0]?.cost?.micros,
        "the agents' shares sum to the app's cost",
      );

      const byTime = await call<CreatorTopAgentsResponse>(
        base,
        `/v1/creators/ada/agents/top?${monthRange}&by=response_time&limit=1`,
        keys.ada.secret,
      );
      assert.equal(byTime.status, 200, byTime.text);
      const all = attributed(outcomes.filter((o) => o.mozaiks_user_id === "ada" && inMonth(o.occurred_at)));
      // Per answer, as the session summaries average: the agent's total time over its answers.
      const slowest = [...all.entries()]
        .filter(([, a]) => a.times.length > 0 && a.answers > 0)
        .map(([name, a]) => [name, a.times.reduce((x, y) => x + y, 0) / a.answers, a.times] as const)
        .sort((a, b) => b[1] - a[1])[0]!;
      const sorted = [...slowest[2]].sort((a, b) => a - b);
      assert.deepEqual(
        byTime.body.agents.map((a) => [a.agent, a.timed_records, a.avg_response_ms, a.p95_response_ms]),
        [
          [
            slowest[0],
            sorted.length,
            Math.round(slowest[1] * 10) / 10,
            sorted[Math.floor(0.95 * sorted.length)],
          ],
        ],
      );
    });

    it("refuses a malformed usage query with 400 naming the field", async () => {
      const answer = await call<{ error: { fields: string[] } }>(
        base,
        "/v1/apps/ada-notes/usage?from=2026-01-01T00:00:00Z&to=2027-01-01T00:00:00Z&window=minute",
        keys.read.secret,
      );
      assert.equal(answer.status, 400);
      assert.deepEqual(answer.body.error.fields, ["querystring.window"]);
    });

    it("a creator's apps with their totals", async () => {
      const answer = await call<CreatorAppsResponse>(base, "/v1/creators/ada/apps", keys.ada.secret);
      assert.equal(answer.status, 200, answer.text);
      assert.deepEqual(
        answer.body.apps.map((a) => [
          a.enterprise_id,
          a.billed.micros,
          a.creator_share.micros,
          a.platform_fee.micros,
        ]),
        ADA_APPS.map((id) => {
          const of = outcomes.filter((o) => o.enterprise_id === id);
          return [
            id,
            sum(of.map((o) => o.billed_micros)).toString(),
            sum(of.map((o) => o.creator_share_micros)).toString(),
            sum(of.map((o) => o.platform_fee_micros)).toString(),
          ];
        }),
      );
    });

    it("an app's paused chats", async () => {
      const answer = await call<PausedChatsResponse>(base, "/v1/apps/bob-bot/paused-chats", keys.bob.secret);
      assert.equal(answer.status, 200, answer.text);
      const paused = Object.values(expected.state.accounts)
        .filter((a) => a.enterprise_id === "bob-bot")
        .flatMap((a) =>
          Object.entries(a.chats)
            .filter(([, c]) => c.paused)
            .map(([id, c]) => [id, a.platform_user_id, c.pause_reason]),
        );
      assert.ok(paused.length > 0);
      assert.deepEqual(
        answer.body.chats.map((c) => [c.chat_id, c.platform_user_id, c.pause_reason]),
        paused,
      );
    });

    it("a creator's statement for a month spanning a price change equals `agentmeter compute` over the same records; as JSON and CSV", async () => {
      const computed = await computeOffline(records);
      const usageOf = computed.outputs.filter(
        (o): o is ComputedOutcome =>
          o.kind === "usage_outcome" && (o as ComputedOutcome).level === "app_usage",
      );
      const adaInMonth = usageOf.filter((o) => o.mozaiks_user_id === "ada" && inMonth(o.occurred_at));
      assert.deepEqual(
        [...new Set(adaInMonth.flatMap((o) => o.price_ids))].sort(),
        ["api-model-1", "api-model-2"],
        "the month spans the price change",
      );
      assert.ok(
        usageOf.some((o) => !inMonth(o.occurred_at) && BigInt(o.billed_micros) > 0n),
        "a record of an earlier month was billed in the same run",
      );

      const answer = await call<StatementResponse>(
        base,
        `/v1/creators/ada/statements/${month}`,
        keys.ada.secret,
      );
      assert.equal(answer.status, 200, answer.text);
      const billed = adaInMonth.filter((o) => BigInt(o.billed_micros) !== 0n);
      const lineOf = (of: ComputedOutcome[]) => [
        of.length,
        sum(of.map((o) => BigInt(o.billed_micros))).toString(),
        sum(of.map((o) => BigInt(o.creator_share_micros))).toString(),
        sum(of.map((o) => BigInt(o.platform_fee_micros))).toString(),
      ];
      assert.deepEqual(
        answer.body.lines.map((l) => [
          l.enterprise_id,
          l.records,
          l.billed.micros,
          l.creator_share.micros,
          l.platform_fee.micros,
        ]),
        [...new Set(billed.map((o) => o.enterprise_id))]
          .sort()
          .map((id) => [id, ...lineOf(billed.filter((o) => o.enterprise_id === id))]),
        "each line is compute's, by event-time month",
      );
      const t = answer.body.total;
      assert.deepEqual(
        [t.records, t.billed.micros, t.creator_share.micros, t.platform_fee.micros],
        lineOf(billed),
      );
      // The reconciliation's lifetime figures are compute's too, and so are the creator's earnings.
      const adaLifetime = usageOf.filter((o) => o.mozaiks_user_id === "ada");
      assert.equal(
        answer.body.reconciliation.clickhouse_billed.micros,
        sum(adaLifetime.map((o) => BigInt(o.billed_micros))).toString(),
      );
      const apps = await call<CreatorAppsResponse>(base, "/v1/creators/ada/apps", keys.ada.secret);
      assert.equal(
        sum(apps.body.apps.map((a) => BigInt(a.creator_share.micros))).toString(),
        computed.creators.find((c) => c.mozaiks_user_id === "ada")?.earnings_micros,
      );
      const total = answer.body.total;
      assert.equal(
        BigInt(total.creator_share.micros) + BigInt(total.platform_fee.micros),
        BigInt(total.billed.micros),
      );
      assert.equal(answer.body.reconciliation.agrees, true, JSON.stringify(answer.body.reconciliation));

      const csv = await call<string>(
        base,
        `/v1/creators/ada/statements/${month}?format=csv`,
        keys.ada.secret,
      );
      assert.equal(csv.status, 200);
      assert.match(csv.type, /text\/csv/);
      const lines = csv.text.trim().split("\n");
      assert.equal(
        lines[0],
        "mozaiks_user_id,month,enterprise_id,records,billed_usd,creator_share_usd,platform_fee_usd,adjustments,reversed_billed_usd,reversed_creator_share_usd,reversed_platform_fee_usd,net_billed_usd,net_creator_share_usd,net_platform_fee_usd",
      );
      assert.equal(
        lines.at(-2),
        [
          "ada",
          month,
          "TOTAL",
          total.records,
          total.billed.usd,
          total.creator_share.usd,
          total.platform_fee.usd,
          total.adjustments,
          total.reversed_billed.usd,
          total.reversed_creator_share.usd,
          total.reversed_platform_fee.usd,
          total.net_billed.usd,
          total.net_creator_share.usd,
          total.net_platform_fee.usd,
        ].join(","),
      );
      assert.match(lines.at(-1) ?? "", /^# reconciliation: agrees/);
    });
  });

  describe("tenancy: every read route x own creator / other creator / no key / bad key", () => {
    const routes = [
      "/v1/accounts/platform/ada",
      "/v1/accounts/app_usage/ada-notes/u1",
      `/v1/apps/ada-notes/usage?${monthRange}&window=day`,
      `/v1/apps/ada-notes/agents/top?${monthRange}`,
      "/v1/apps/ada-notes/paused-chats",
      // Pinned to ada in the billing config and never used: no Enterprises document, ada's all the same.
      "/v1/apps/ada-soon/paused-chats",
      "/v1/creators/ada/apps",
      `/v1/creators/ada/agents/top?${monthRange}&by=response_time`,
      `/v1/creators/ada/statements/${month}`,
    ];
    for (const route of routes) {
      it(route.split("?")[0]! + (route.includes("?") ? "?..." : ""), async () => {
        // ada has no platform account (she sent no platform usage): 404 to her own key too, 200 to none.
        const own = await call(base, route, keys.ada.secret);
        assert.equal(own.status, route.includes("/platform/") ? 404 : 200, own.text);
        const other = await call<{ error: { code: string } }>(base, route, keys.bob.secret);
        assert.equal(other.status, 404, other.text);
        assert.equal(other.body.error.code, "NOT_FOUND");
        if (route.includes("/platform/"))
          assert.equal(
            other.text.replace("ada", "?"),
            own.text.replace("ada", "?"),
            "another's and a missing account answer alike",
          );
        assert.equal((await call(base, route)).status, 401);
        assert.equal((await call(base, route, "amk_forged")).status, 401);
      });
    }
  });

  describe("tenancy in an app no creator is pinned to", () => {
    // The default `unpinned_apps: first_record` binds each end user to the creator of its first record,
    // so one unpinned app can hold end users of two creators. The app's owner for the API (the Enterprises
    // projection) must see only its own end users' records.
    it("given end users of cara and then of dan in shared-app, then cara's key sees only cara's end users, agents and paused chats, dan's none, a read key both", async () => {
      // cara's first, then dan's: the processor writes an app's Enterprises projection when it first
      // meets the app, so cara is the app's owner for the API.
      for (const creator of ["cara", "dan"]) {
        const user = `${creator[0]}1`;
        await pipeline.produce([0, 1, 2, 3, 4, 5].map((turn) => usage(creator, "shared-app", user, turn)));
        await pipeline.caughtUp();
      }
      const route = `/v1/apps/shared-app/usage?${monthRange}&window=month&group_by=end_user`;
      const mine = await call<UsageResponse>(base, route, keys.cara.secret);
      assert.equal(mine.status, 200, mine.text);
      assert.deepEqual(
        mine.body.rows.map((row) => row.group),
        ["c1"],
      );
      const all = await call<UsageResponse>(base, route, keys.read.secret);
      assert.deepEqual(
        all.body.rows.map((row) => row.group),
        ["c1", "d1"],
      );
      const byAgent = `/v1/apps/shared-app/usage?${monthRange}&window=month&group_by=agent`;
      const agentsMine = await call<UsageResponse>(base, byAgent, keys.cara.secret);
      const agentsAll = await call<UsageResponse>(base, byAgent, keys.read.secret);
      assert.equal(agentsMine.status, 200, agentsMine.text);
      assert.deepEqual(
        agentsMine.body.rows.map((row) => [row.group, row.records * 2, row.tokens * 2]),
        agentsAll.body.rows.map((row) => [row.group, row.records, row.tokens]),
        "cara's half of each agent's calls and tokens (the two users sent the same turns)",
      );
      const top = await call<AppTopAgentsResponse>(
        base,
        `/v1/apps/shared-app/agents/top?${monthRange}&by=tokens`,
        keys.cara.secret,
      );
      const topAll = await call<AppTopAgentsResponse>(
        base,
        `/v1/apps/shared-app/agents/top?${monthRange}&by=tokens`,
        keys.read.secret,
      );
      assert.deepEqual(
        top.body.agents.map((agent) => [agent.agent, agent.tokens * 2]),
        topAll.body.agents.map((agent) => [agent.agent, agent.tokens]),
      );
      const paused = await call<PausedChatsResponse>(
        base,
        "/v1/apps/shared-app/paused-chats",
        keys.cara.secret,
      );
      const pausedAll = await call<PausedChatsResponse>(
        base,
        "/v1/apps/shared-app/paused-chats",
        keys.read.secret,
      );
      assert.deepEqual(
        pausedAll.body.chats.map((chat) => chat.platform_user_id).sort(),
        ["c1", "d1"],
        "both end users ran out of trial tokens",
      );
      assert.deepEqual(
        paused.body.chats.map((chat) => chat.platform_user_id),
        ["c1"],
      );
      assert.equal((await call(base, route, keys.dan.secret)).status, 404, "the app is cara's now");
      // The app's revenue ledger is the whole app's (dan's end user too): cara's statement names the app as
      // differing and shows none of its ledger's amounts.
      const statement = await call<StatementResponse>(
        base,
        `/v1/creators/cara/statements/${month}`,
        keys.cara.secret,
      );
      assert.equal(statement.status, 200, statement.text);
      const r = statement.body.reconciliation;
      assert.deepEqual([r.agrees, r.differing_apps], [false, ["shared-app"]]);
      assert.deepEqual(
        [r.mongodb_billed.micros, r.mongodb_records],
        [r.clickhouse_billed.micros, r.clickhouse_records],
      );
    });
  });

  describe("OpenAPI and dashboard", () => {
    it("serves an OpenAPI document listing every route", async () => {
      const answer = await call<{ openapi: string; paths: Record<string, unknown> }>(base, "/openapi.json");
      assert.equal(answer.status, 200);
      assert.match(answer.body.openapi, /^3\./);
      assert.deepEqual(Object.keys(answer.body.paths).sort(), [
        "/v1/accounts/app_usage/{enterprise_id}/{platform_user_id}",
        "/v1/accounts/platform/{mozaiks_user_id}",
        "/v1/apps/{enterprise_id}/agents/top",
        "/v1/apps/{enterprise_id}/paused-chats",
        "/v1/apps/{enterprise_id}/usage",
        "/v1/creators/{mozaiks_user_id}/agents/top",
        "/v1/creators/{mozaiks_user_id}/apps",
        "/v1/creators/{mozaiks_user_id}/statements/{month}",
        "/v1/records",
      ]);
    });

    const chromium =
      process.env.AGENTMETER_CHROMIUM ?? ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find(existsSync);
    const noChromium = "no chromium found (apt-get install -y chromium, or set AGENTMETER_CHROMIUM)";
    it("draws in a real browser the figures the API returns", {
      skip: skipWithout(chromium, noChromium),
    }, async () => {
      const { chromium: launcher } = await import("playwright-core");
      const browser = await launcher.launch({
        executablePath: requireTool(chromium, noChromium),
        args: ["--no-sandbox"],
      });
      try {
        const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
        await page.goto(`${base}/`);
        await page.fill("#key", keys.ada.secret);
        await page.fill("#creator", "ada");
        await page.fill("#month", month);
        await page.click("#load");
        await page.waitForSelector("body[data-loaded]");
        assert.equal(
          await page.getAttribute("body", "data-loaded"),
          "true",
          (await page.textContent("#status")) ?? "",
        );
        const drawn = await page.evaluate(() => {
          const charts = (
            globalThis as unknown as {
              agentmeterCharts: Record<
                string,
                { data: { labels: unknown[]; datasets: { label: string; data: number[] }[] } }
              >;
            }
          ).agentmeterCharts;
          return Object.fromEntries(
            Object.entries(charts).map(([name, chart]) => [
              name,
              {
                labels: chart.data.labels,
                datasets: chart.data.datasets.map((d) => ({ label: d.label, data: [...d.data] })),
              },
            ]),
          );
        });
        await page.screenshot({ path: ".agentmeter/test-logs/dashboard.png", fullPage: true });

        const statement = (
          await call<StatementResponse>(base, `/v1/creators/ada/statements/${month}`, keys.ada.secret)
        ).body;
        assert.deepEqual(drawn.split, {
          labels: statement.lines.map((l) => l.enterprise_id),
          datasets: [
            { label: "creator share", data: statement.lines.map((l) => Number(l.creator_share.usd)) },
            { label: "platform fee", data: statement.lines.map((l) => Number(l.platform_fee.usd)) },
          ],
        });
        const apps = (
          await call<CreatorAppsResponse>(base, "/v1/creators/ada/apps", keys.ada.secret)
        ).body.apps.map((a) => a.enterprise_id);
        assert.deepEqual(apps, ADA_APPS);
        for (const [index, id] of apps.entries()) {
          const daily = (
            await call<UsageResponse>(base, `/v1/apps/${id}/usage?${monthRange}&window=day`, keys.ada.secret)
          ).body;
          const tokens = drawn.tokens?.datasets[index];
          assert.equal(tokens?.label, id);
          assert.equal(
            tokens?.data.reduce((a, b) => a + b, 0),
            daily.rows.reduce((n, r) => n + r.tokens, 0),
          );
          for (const row of daily.rows) {
            const day = drawn.tokens?.labels.indexOf(row.bucket.slice(0, 10)) ?? -1;
            assert.equal(tokens?.data[day], row.tokens);
            assert.equal(drawn.cost?.datasets[index]?.data[day], Number(row.cost?.usd));
          }
          const paused = (
            await call<PausedChatsResponse>(base, `/v1/apps/${id}/paused-chats`, keys.ada.secret)
          ).body;
          assert.equal(drawn.paused?.datasets[0]?.data[index], paused.chats.length);
        }
        const top = async (by: string) =>
          (
            await call<CreatorTopAgentsResponse>(
              base,
              `/v1/creators/ada/agents/top?${monthRange}&by=${by}&limit=10`,
              keys.ada.secret,
            )
          ).body.agents;
        const byCost = await top("cost");
        assert.ok(byCost.length >= 2);
        assert.deepEqual(drawn["agent-cost"], {
          labels: byCost.map((a) => a.agent),
          datasets: [{ label: "cost (USD)", data: byCost.map((a) => Number(a.cost.usd)) }],
        });
        const byTime = await top("response_time");
        assert.deepEqual(drawn["agent-time"], {
          labels: byTime.map((a) => a.agent),
          datasets: [
            { label: "avg ms", data: byTime.map((a) => a.avg_response_ms) },
            { label: "p95 ms", data: byTime.map((a) => a.p95_response_ms) },
          ],
        });
      } finally {
        await browser.close();
      }
    });
  });
});

describe("agentmeter serve killed mid-burst: every acknowledged record is on the topic exactly once", () => {
  let pipeline: TestPipeline;
  let child: ChildProcess | undefined;
  let rulesDir: string | undefined;

  before(async () => {
    pipeline = await TestPipeline.create();
  });

  after(async () => {
    child?.kill("SIGKILL");
    await pipeline?.close();
    if (rulesDir !== undefined) await rm(rulesDir, { recursive: true, force: true });
  });

  it("SIGKILL while batches are in flight", async () => {
    const key = createApiKey("burst", { kind: "ingest" });
    const port = await freePort();
    // The server prices what it takes: the same rules as the records' (api-model is theirs).
    rulesDir = await mkdtemp(join(tmpdir(), "agentmeter-api-burst-"));
    const rules = join(rulesDir, "billing.json");
    await writeFile(rules, JSON.stringify(billingJson));
    child = spawn(process.execPath, ["bin/agentmeter.mjs", "serve"], {
      env: {
        ...process.env,
        ...configEnv(pipeline.config),
        AGENTMETER_BILLING_CONFIG: rules,
        AGENTMETER_API_KEYS: key.entry,
        AGENTMETER_API_PORT: String(port),
        LOG_LEVEL: "warn",
      },
      stdio: ["ignore", "ignore", "inherit"],
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      const up = await fetch(`${base}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
      if (up) break;
      assert.ok(i < 300, "the server did not start");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const acked = new Set<string>();
    let sent = 0;
    let killed = false;
    const batch = (worker: number, n: number) =>
      Array.from({ length: 100 }, (_, i) => ({
        ...usage("burst-creator", "burst-app", `w${worker}`, 0),
        record_id: `b-${worker}-${n}-${i}`,
        occurred_at: new Date().toISOString(),
      }));
    const worker = async (id: number) => {
      for (let n = 0; !killed; n++) {
        const records = batch(id, n);
        sent += records.length;
        try {
          const answer = await call<IngestResponse>(base, "/v1/records", key.secret, records);
          if (answer.status !== 202) continue;
          // A server that refuses every record would keep this loop going for ever.
          if (answer.body.accepted === 0 && acked.size === 0 && n >= 20)
            throw new Error(`every record refused: ${JSON.stringify(answer.body.results[0])}`);
          for (const r of answer.body.results) if (r.status === "accepted") acked.add(r.record_id);
        } catch {
          return; // the connection died with the server: this batch was never acknowledged
        }
        if (acked.size >= 3_000 && !killed) {
          killed = true;
          child?.kill("SIGKILL");
        }
      }
    };
    await Promise.all(Array.from({ length: 8 }, (_, id) => worker(id)));
    assert.ok(killed);
    assert.ok(sent > acked.size, "batches were in flight when the server died");

    // Read the whole topic back.
    const admin = await pipeline.admin();
    const high = await admin.fetchTopicOffsets(pipeline.topic);
    const total = high.reduce((n, p) => n + Number(p.high), 0);
    const consumer = pipeline.kafka().consumer({ groupId: `${pipeline.groupId}-reader` });
    const seen = new Map<string, number>();
    await consumer.connect();
    await consumer.subscribe({ topic: pipeline.topic, fromBeginning: true });
    let read = 0;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`read ${read} of ${total}`)), 60_000);
      void consumer.run({
        eachMessage: async ({ message }) => {
          const id = (JSON.parse(message.value!.toString()) as { record_id: string }).record_id;
          seen.set(id, (seen.get(id) ?? 0) + 1);
          if (++read >= total) {
            clearTimeout(timer);
            resolve();
          }
        },
      });
    });
    await consumer.disconnect();
    const missing = [...acked].filter((id) => !seen.has(id));
    const twice = [...seen.entries()].filter(([, n]) => n > 1);
    assert.deepEqual(missing, [], "an acknowledged record is missing from the topic");
    assert.deepEqual(twice, [], "a record is on the topic twice");
    process.stderr.write(
      `  burst: ${acked.size} acknowledged, ${seen.size} on the topic, ${sent} sent before SIGKILL\n`,
    );
  });
});

describe("agentmeter serve on a port another process holds", () => {
  let pipeline: TestPipeline;
  const holder = createServer();

  before(async () => {
    pipeline = await TestPipeline.create();
    await new Promise<void>((resolve) => holder.listen(0, "127.0.0.1", resolve));
  });

  after(async () => {
    await new Promise((resolve) => holder.close(resolve));
    await pipeline?.close();
  });

  it("says so in one line naming the variables, exits 2, and leaves no client open to hold the process", async () => {
    const address = holder.address();
    assert.ok(typeof address === "object" && address !== null);
    const child = spawn(process.execPath, ["bin/agentmeter.mjs", "serve"], {
      env: {
        ...process.env,
        ...configEnv(pipeline.config),
        AGENTMETER_API_PORT: String(address.port),
        LOG_LEVEL: "silent",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new Error(`still running after 90 s: ${stderr}`));
      }, 90_000);
      child.on("exit", (exitCode) => {
        clearTimeout(timer);
        resolve(exitCode);
      });
    });
    assert.equal(code, 2, stderr);
    assert.equal(
      stderr,
      `agentmeter serve: config: AGENTMETER_API_HOST=127.0.0.1 AGENTMETER_API_PORT=${address.port}: cannot listen there (EADDRINUSE: another process holds it)\n`,
    );
  });
});
