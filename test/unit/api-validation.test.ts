import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import type { BudgetStates } from "../../pipeline/api/budgets.ts";
import { loadServeConfig } from "../../pipeline/api/config.ts";
import type { IngestProducer } from "../../pipeline/api/ingest-producer.ts";
import { checkRecords } from "../../pipeline/api/ingest-validate.ts";
import { createApiKey, findKey, parseApiKeys } from "../../pipeline/api/keys.ts";
import { type AppOwners, AppOwnership } from "../../pipeline/api/ownership.ts";
import { accountResponse } from "../../pipeline/api/reads/account.ts";
import { monthPeriod } from "../../pipeline/api/reads/statement.ts";
import { statementCsv } from "../../pipeline/api/reads/statement-csv.ts";
import { buildApi } from "../../pipeline/api/server.ts";
import type { ReadStores } from "../../pipeline/api/stores.ts";
import { main } from "../../pipeline/cli/main.ts";
import { loadConfig } from "../../pipeline/config.ts";
import { applyBatch, budgetStateOf, emptyState, parseBillingConfig } from "../../pipeline/core/index.ts";
import { createLogger } from "../../pipeline/log.ts";
import {
  accountResponseSchema,
  creatorAppsResponseSchema,
  creatorTopAgentsResponseSchema,
  ingestBodySchema,
  ingestResponseSchema,
  pausedChatsResponseSchema,
  type StatementResponse,
  statementParamsSchema,
  statementResponseSchema,
  topAgentsQuerySchema,
  usageQuerySchema,
  usageResponseSchema,
} from "../../schemas/api.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import type { MongoLayout } from "../../sinks/mongo/layout.ts";
import { credit as creditRecord, usage as usageRecord } from "./builders.ts";

const usage = {
  type: "usage",
  record_id: "r-1",
  level: "app_usage",
  enterprise_id: "app-1",
  mozaiks_user_id: "creator-1",
  platform_user_id: "user-1",
  workflow_type: "chat",
  workflow_name: "wf",
  session_id: "s-1",
  chat_id: "c-1",
  agent_usage: { A: { prompt_tokens: 10, completion_tokens: 5 } },
  occurred_at: "2026-11-03T10:00:00Z",
};
const credit = {
  type: "credit",
  kind: "top_up",
  record_id: "cr-1",
  level: "app_usage",
  enterprise_id: "app-1",
  mozaiks_user_id: "creator-1",
  platform_user_id: "user-1",
  tokens: 100,
  occurred_at: "2026-11-03T10:00:00Z",
};

describe("POST /v1/records: each record checked on its own", () => {
  const policy = { maxRecordBytes: 65_536, mayCredit: false, billing: parseBillingConfig({}) };

  it("accepts a valid record and fills a missing record_id", () => {
    const { record_id: _, ...withoutId } = usage;
    const [checked] = checkRecords(withoutId, policy);
    assert.ok(checked?.ok);
    assert.match(checked.prepared.record.record_id, /^[0-9a-f-]{36}$/);
  });

  it("rejects by index with the reason code and the field paths, leaving the valid neighbours", () => {
    const results = checkRecords(
      [
        usage,
        { ...usage, record_id: "r-2", agent_usage: { A: { prompt_tokens: 1.5, completion_tokens: 1 } } },
      ],
      policy,
    );
    assert.equal(results[0]?.ok, true);
    const bad = results[1];
    assert.ok(bad !== undefined && !bad.ok);
    assert.equal(bad.result.index, 1);
    assert.equal(bad.result.code, "RECORD_INVALID");
    assert.equal(bad.result.record_id, "r-2");
    assert.deepEqual(bad.result.fields, ["agent_usage.A.prompt_tokens"]);
  });

  it("refuses credit records from a key that is not admin, and takes them from one that is", () => {
    const [refused] = checkRecords(credit, policy);
    assert.ok(refused !== undefined && !refused.ok);
    assert.equal(refused.result.code, "RECORD_UNAUTHORIZED");
    assert.deepEqual(refused.result.fields, ["type"]);
    assert.equal(checkRecords(credit, { ...policy, mayCredit: true })[0]?.ok, true);
  });

  it("refuses a usage record the price book cannot price, which the processor would dead-letter after a 202", () => {
    const unpriced = { ...usage, model: "api-model" };
    const [refused] = checkRecords(unpriced, policy);
    assert.ok(refused !== undefined && !refused.ok);
    assert.equal(refused.result.code, "UNKNOWN_MODEL");
    assert.deepEqual(refused.result.fields, ["agent_usage"]);
    assert.match(refused.result.message, /model api-model has no price at 2026-11-03T10:00:00Z/);
    const audio = {
      ...usage,
      model: "gpt-4o-mini",
      agent_usage: { A: { prompt_tokens: 1, completion_tokens: 0, audio_tokens: 1 } },
    };
    assert.equal(
      (checkRecords(audio, policy)[0] as { result: { code: string } }).result.code,
      "UNPRICED_TOKEN_CLASS",
    );
    // Priced as the default model where the rules say so: accepted, as the processor would bill it.
    const fallback = { ...policy, billing: parseBillingConfig({ unknown_model: "default_price" }) };
    assert.equal(checkRecords(unpriced, fallback)[0]?.ok, true);
  });

  it("refuses a record over the processor's size bound", () => {
    const [big] = checkRecords({ ...usage, workflow_name: "w" }, { ...policy, maxRecordBytes: 100 });
    assert.ok(big !== undefined && !big.ok);
    assert.equal(big.result.code, "RECORD_TOO_LARGE");
  });

  it("the body is one object or an array of 1 to the configured number", () => {
    const body = ingestBodySchema(2);
    assert.equal(body.safeParse(usage).success, true);
    assert.equal(body.safeParse([usage, usage]).success, true);
    assert.equal(body.safeParse([usage, usage, usage]).success, false);
    assert.equal(body.safeParse([]).success, false);
    assert.equal(body.safeParse("text").success, false);
  });
});

describe("read queries", () => {
  it("usage: from and to are ISO date-times, to after from, window and level defaulted", () => {
    const parsed = usageQuerySchema.parse({ from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z" });
    assert.equal(parsed.window, "hour");
    assert.equal(parsed.level, "app_usage");
    const backwards = usageQuerySchema.safeParse({
      from: "2026-11-02T00:00:00Z",
      to: "2026-11-01T00:00:00Z",
    });
    assert.deepEqual(
      backwards.error?.issues.map((i) => i.path),
      [["to"]],
    );
    assert.equal(
      usageQuerySchema.safeParse({ from: "yesterday", to: "2026-11-01T00:00:00Z" }).success,
      false,
    );
    assert.equal(
      usageQuerySchema.safeParse({ from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z", window: "week" })
        .success,
      false,
    );
    assert.equal(
      usageQuerySchema.safeParse({ from: "2026-11-01T00:00:00Z", to: "2026-11-02T00:00:00Z", extra: "1" })
        .success,
      false,
    );
  });

  it("usage: refuses more than 10,000 buckets", () => {
    const year = { from: "2026-01-01T00:00:00Z", to: "2027-01-01T00:00:00Z" };
    assert.deepEqual(
      usageQuerySchema.safeParse({ ...year, window: "minute" }).error?.issues.map((i) => i.path),
      [["window"]],
    );
    assert.equal(usageQuerySchema.safeParse({ ...year, window: "hour" }).success, true);
  });

  it("top agents: ranked by cost by default, limit 1 to 100, to after from, at most 400 days", () => {
    const range = { from: "2026-11-01T00:00:00Z", to: "2026-12-01T00:00:00Z" };
    const parsed = topAgentsQuerySchema.parse(range);
    assert.deepEqual([parsed.by, parsed.limit, parsed.level], ["cost", 10, "app_usage"]);
    assert.equal(topAgentsQuerySchema.parse({ ...range, by: "response_time", limit: "3" }).limit, 3);
    for (const bad of [{ by: "speed" }, { limit: "0" }, { limit: "101" }, { limit: "2.5" }])
      assert.equal(topAgentsQuerySchema.safeParse({ ...range, ...bad }).success, false, JSON.stringify(bad));
    assert.deepEqual(
      topAgentsQuerySchema
        .safeParse({ from: "2025-01-01T00:00:00Z", to: "2026-12-01T00:00:00Z" })
        .error?.issues.map((i) => i.path),
      [["to"]],
    );
  });

  it("statements: a month is YYYY-MM, and covers [first day, first day of the next) in UTC", () => {
    assert.equal(statementParamsSchema.safeParse({ mozaiks_user_id: "c", month: "2026-13" }).success, false);
    assert.equal(statementParamsSchema.safeParse({ mozaiks_user_id: "c", month: "2026-1" }).success, false);
    assert.deepEqual(monthPeriod("2026-12"), {
      from: "2026-12-01T00:00:00.000Z",
      to: "2027-01-01T00:00:00.000Z",
    });
  });

  it("statement CSV: a row per app with its adjustments and net, a total, and the reconciliation line", () => {
    const m = (usd: string, micros: string) => ({ usd, micros });
    // App a: billed 1 in the month, a refund of 0.1 of it (0.07 creator, 0.03 platform) in the same month.
    const adjusted = {
      adjustments: 1,
      reversed_billed: m("0.1", "100000"),
      reversed_creator_share: m("0.07", "70000"),
      reversed_platform_fee: m("0.03", "30000"),
      net_billed: m("0.9", "900000"),
      net_creator_share: m("0.63", "630000"),
      net_platform_fee: m("0.27", "270000"),
    };
    const statement: StatementResponse = {
      mozaiks_user_id: "c",
      month: "2026-11",
      period_start: "2026-11-01T00:00:00.000Z",
      period_end: "2026-12-01T00:00:00.000Z",
      lines: [
        {
          enterprise_id: "a",
          records: 2,
          billed: m("1", "1000000"),
          creator_share: m("0.7", "700000"),
          platform_fee: m("0.3", "300000"),
          ...adjusted,
        },
      ],
      total: {
        records: 2,
        billed: m("1", "1000000"),
        creator_share: m("0.7", "700000"),
        platform_fee: m("0.3", "300000"),
        ...adjusted,
      },
      reconciliation: {
        agrees: true,
        clickhouse_billed: m("1", "1000000"),
        mongodb_billed: m("1", "1000000"),
        clickhouse_records: 2,
        mongodb_records: 2,
        differing_apps: [],
      },
    };
    assert.deepEqual(statementCsv(statement).split("\n"), [
      "mozaiks_user_id,month,enterprise_id,records,billed_usd,creator_share_usd,platform_fee_usd,adjustments,reversed_billed_usd,reversed_creator_share_usd,reversed_platform_fee_usd,net_billed_usd,net_creator_share_usd,net_platform_fee_usd",
      "c,2026-11,a,2,1,0.7,0.3,1,0.1,0.07,0.03,0.9,0.63,0.27",
      "c,2026-11,TOTAL,2,1,0.7,0.3,1,0.1,0.07,0.03,0.9,0.63,0.27",
      "# reconciliation: agrees; clickhouse billed 1 in 2 records, mongodb ledgers 1 in 2 records",
      "",
    ]);
  });
});

describe("API keys and serve config", () => {
  it("a created key is found by its secret, and only by it", () => {
    const made = createApiKey("ops", { kind: "creator", mozaiksUserId: "creator-1" });
    const keys = parseApiKeys(`${createApiKey("other", { kind: "admin" }).entry},${made.entry}`);
    assert.equal(findKey(keys, made.secret)?.name, "ops");
    assert.deepEqual(findKey(keys, made.secret)?.scope, { kind: "creator", mozaiksUserId: "creator-1" });
    assert.equal(findKey(keys, `${made.secret}x`), undefined);
    assert.equal(findKey(keys, ""), undefined);
  });

  it("a bad entry names its position and never its hash", () => {
    const hash = "a".repeat(64);
    assert.throws(
      () => parseApiKeys(`ok:${hash}:admin,bad:${hash}:root`),
      (error: Error) => {
        assert.match(error.message, /entry 2 \(bad\).*scope/);
        assert.ok(!error.message.includes(hash));
        return true;
      },
    );
    assert.throws(() => parseApiKeys(`dup:${hash}:read,dup:${hash}:read`), /used twice/);
    assert.throws(() => parseApiKeys("short:abc:read"), /64 lower-case hex/);
  });

  it("serve config: defaults, and a bad value names its variable", () => {
    const config = loadServeConfig({});
    assert.equal(config.serve.AGENTMETER_API_PORT, 8080);
    assert.equal(config.serve.AGENTMETER_API_MAX_BATCH, 1_000);
    assert.deepEqual(config.serve.keys, []);
    assert.throws(
      () => loadServeConfig({ AGENTMETER_API_PORT: "99999" }),
      /AGENTMETER_API_PORT="99999" is invalid/,
    );
    assert.throws(
      () => loadServeConfig({ AGENTMETER_BILLING_CONFIG: "/nonexistent/billing.json" }),
      /AGENTMETER_BILLING_CONFIG=\/nonexistent\/billing.json cannot be read/,
    );
  });
});

describe("agentmeter keys create", () => {
  const run = async (...argv: string[]) => {
    let stdout = "";
    let stderr = "";
    const io = {
      stdin: process.stdin,
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
    };
    const code = await main(argv, io);
    return { code, stdout, stderr };
  };
  const printed = (stdout: string) => {
    const lines = stdout.split("\n").map((line) => line.trim());
    const secret = lines.find((line) => line.startsWith("amk_")) ?? "";
    const entry = lines.at(-2) ?? "";
    return { secret, keys: parseApiKeys(entry) };
  };

  it("prints a key once and the AGENTMETER_API_KEYS entry that finds it, with the scope", async () => {
    const made = await run("keys", "create", "--scope", "creator:ada");
    assert.equal(made.code, 0, made.stderr);
    const { secret, keys } = printed(made.stdout);
    const found = findKey(keys, secret);
    assert.deepEqual(found?.scope, { kind: "creator", mozaiksUserId: "ada" });
    assert.match(found?.name ?? "", /^creator-ada-[0-9a-f]{6}$/);
    assert.ok(!made.stdout.includes(keys[0]!.hash.toString("base64")));
    const named = await run("keys", "create", "--scope", "ingest", "--name", "runtime-1");
    assert.equal(printed(named.stdout).keys[0]?.name, "runtime-1");
  });

  it("keeps the former spelling 'serve keys create' working", async () => {
    const old = await run("serve", "keys", "create", "--name", "ops", "--scope", "read");
    assert.equal(old.code, 0, old.stderr);
    const { secret, keys } = printed(old.stdout);
    assert.deepEqual(findKey(keys, secret)?.scope, { kind: "read" });
  });

  it("refuses a missing or bad scope, a bad name and unknown options with exit 2", async () => {
    for (const argv of [
      ["keys", "create"],
      ["keys", "create", "--scope", "root"],
      ["keys", "create", "--scope", "creator:"],
      ["keys", "create", "--scope", "read", "--name", "no spaces"],
      ["keys", "create", "--scope", "read", "--colour", "red"],
      ["keys", "delete"],
      ["keys"],
    ]) {
      const answer = await run(...argv);
      assert.equal(answer.code, 2, argv.join(" "));
      assert.equal(answer.stdout, "", argv.join(" "));
    }
  });
});

describe("app ownership: a creator pinned in the billing config rules its app", () => {
  /** A layout whose Enterprises projection says `projected`; counts its reads. */
  const projection = (projected: Record<string, string>) => {
    const reads = { count: 0 };
    const collection = {
      findOne: async (filter: { _id: string }) => {
        reads.count++;
        const creator = projected[filter._id];
        return creator === undefined ? null : { _id: filter._id, mozaiks_user_id: creator };
      },
      find: (filter: { mozaiks_user_id: string }) => ({
        toArray: async () => {
          reads.count++;
          return Object.entries(projected)
            .filter(([, creator]) => creator === filter.mozaiks_user_id)
            .map(([app]) => ({ _id: app }));
        },
      }),
    };
    const layout = { platform: () => ({ collection: () => collection }) } as unknown as MongoLayout;
    return { layout, reads };
  };
  const pins = { "pinned-app": { creator: "ada" } };

  it("a pin wins over the projection, without reading it; unpinned apps follow the projection", async () => {
    const { layout, reads } = projection({ "pinned-app": "mallory", "free-app": "bob", "old-app": "ada" });
    const owners = new AppOwnership(pins, layout, "pinned_then_projection");
    assert.equal(await owners.creatorOf("pinned-app"), "ada");
    assert.equal(reads.count, 0);
    assert.equal(await owners.creatorOf("free-app"), "bob");
    assert.equal(await owners.creatorOf("unknown-app"), null);
    assert.deepEqual(await owners.appsOf("ada"), ["old-app", "pinned-app"]);
    assert.deepEqual(
      await owners.appsOf("mallory"),
      [],
      "a stale projection of a pinned app counts for nothing",
    );
  });

  it("AGENTMETER_API_APP_OWNERS=pinned: an unpinned app belongs to nobody, and the projection is never read", async () => {
    const { layout, reads } = projection({ "free-app": "bob" });
    const owners = new AppOwnership(pins, layout, "pinned");
    assert.equal(await owners.creatorOf("free-app"), null);
    assert.deepEqual(await owners.appsOf("ada"), ["pinned-app"]);
    assert.deepEqual(await owners.appsOf("bob"), []);
    assert.equal(reads.count, 0);
    assert.equal(
      loadServeConfig({ AGENTMETER_API_APP_OWNERS: "pinned" }).serve.AGENTMETER_API_APP_OWNERS,
      "pinned",
    );
    assert.throws(
      () => loadServeConfig({ AGENTMETER_API_APP_OWNERS: "anyone" }),
      /AGENTMETER_API_APP_OWNERS/,
    );
  });
});

describe("an account's budget state: the state topic's when its view has caught up, else MongoDB's", () => {
  const billing = parseBillingConfig({});
  const { state } = applyBatch(
    emptyState(),
    [
      { record: creditRecord({ record_id: "c-1", tokens: 100 }), seq: 1 },
      { record: usageRecord({ record_id: "u-1" }), seq: 2 },
    ],
    billing,
  );
  const account = Object.values(state.accounts)[0]!;
  const key = accountKeyOf(usageRecord());
  const published = budgetStateOf(account);
  const view = (
    held: ReturnType<typeof budgetStateOf> | null,
    caughtUp: boolean,
  ): Pick<BudgetStates, "get"> => ({
    get: (accountKey) => ({
      state: accountKey === key ? held : null,
      staleness: { caught_up: caughtUp, known: held !== null, age_ms: held === null ? null : 5, as_of: null },
    }),
  });

  it("answers from the topic, and says whether it agrees with the document", () => {
    const older = { ...published, available_tokens: published.available_tokens + 1 };
    const answer = accountResponse(account, view(older, true));
    assert.equal(answer.budget_source, "state_topic");
    assert.deepEqual(answer.budget, older);
    assert.deepEqual(answer.state_topic, {
      caught_up: true,
      known: true,
      age_ms: 5,
      agrees_with_mongodb: false,
    });
    assert.equal(accountResponse(account, view(published, true)).state_topic.agrees_with_mongodb, true);
  });

  it("answers from MongoDB while the view is catching up or does not know the account", () => {
    const catchingUp = accountResponse(account, view(published, false));
    assert.equal(catchingUp.budget_source, "mongodb");
    assert.deepEqual(catchingUp.budget, published);
    const unknown = accountResponse(account, view(null, true));
    assert.equal(unknown.budget_source, "mongodb");
    assert.deepEqual(unknown.state_topic, {
      caught_up: true,
      known: false,
      age_ms: null,
      agrees_with_mongodb: null,
    });
  });
});

describe("the server refuses malformed requests before reading any store", () => {
  let app: FastifyInstance;
  const key = createApiKey("reader", { kind: "admin" });
  const untouched = new Proxy(
    {},
    {
      get() {
        throw new Error("a store was read");
      },
    },
  );

  before(async () => {
    const serve = loadServeConfig({ AGENTMETER_API_KEYS: key.entry, AGENTMETER_API_BODY_LIMIT: "65536" });
    app = await buildApi({
      pipeline: loadConfig({}),
      settings: serve.serve,
      producer: untouched as IngestProducer,
      stores: untouched as ReadStores,
      owners: untouched as AppOwners,
      budgets: untouched as BudgetStates,
      billing: parseBillingConfig({}),
      logger: createLogger("silent"),
    });
  });

  after(() => app?.close());

  const get = (url: string, auth = true) =>
    app.inject({ method: "GET", url, headers: auth ? { authorization: `Bearer ${key.secret}` } : {} });

  it("400 with the field path for bad route parameters and queries", async () => {
    const badApp = await get("/v1/apps/Not_Lower/paused-chats");
    assert.equal(badApp.statusCode, 400);
    assert.deepEqual(badApp.json().error.fields, ["params.enterprise_id"]);
    const badQuery = await get(
      "/v1/apps/app-1/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&group_by=colour",
    );
    assert.equal(badQuery.statusCode, 400);
    assert.deepEqual(badQuery.json().error.fields, ["querystring.group_by"]);
    const badMonth = await get("/v1/creators/c/statements/2026-13");
    assert.deepEqual(badMonth.json().error.fields, ["params.month"]);
    const badOrder = await get(
      "/v1/creators/c/agents/top?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&by=speed",
    );
    assert.deepEqual(badOrder.json().error.fields, ["querystring.by"]);
    const badLimit = await get(
      "/v1/apps/app-1/agents/top?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z&limit=1000",
    );
    assert.deepEqual(badLimit.json().error.fields, ["querystring.limit"]);
  });

  it("401 before validation, 404 as JSON for an unknown route, 413 for a body over the limit", async () => {
    assert.equal((await get("/v1/apps/Not_Lower/paused-chats", false)).statusCode, 401);
    const unknown = await get("/v2/nothing");
    assert.equal(unknown.statusCode, 404);
    assert.equal(unknown.json().error.code, "NOT_FOUND");
    const big = await app.inject({
      method: "POST",
      url: "/v1/records",
      headers: { authorization: `Bearer ${key.secret}`, "content-type": "application/json" },
      payload: JSON.stringify([{ pad: "x".repeat(70_000) }]),
    });
    assert.equal(big.statusCode, 413);
    assert.equal(big.json().error.code, "BODY_TOO_LARGE");
  });

  it("docs/api.md documents every route of the OpenAPI document", async () => {
    const doc = readFileSync(new URL("../../docs/api.md", import.meta.url), "utf8");
    const openapi = (await get("/openapi.json", false)).json() as {
      paths: Record<string, Record<string, unknown>>;
    };
    for (const [path, methods] of Object.entries(openapi.paths)) {
      for (const method of Object.keys(methods))
        assert.ok(doc.includes(`${method.toUpperCase()} ${path}`), `${method} ${path}`);
    }
  });

  it("docs/api.md: every JSON example of a route is a valid answer of that route", () => {
    const doc = readFileSync(new URL("../../docs/api.md", import.meta.url), "utf8");
    const schemas = [
      ["POST /v1/records", ingestResponseSchema],
      ["GET /v1/accounts/", accountResponseSchema],
      ["GET /v1/apps/{enterprise_id}/usage", usageResponseSchema],
      ["GET /v1/apps/{enterprise_id}/agents/top", creatorTopAgentsResponseSchema],
      ["GET /v1/apps/{enterprise_id}/paused-chats", pausedChatsResponseSchema],
      ["GET /v1/creators/{mozaiks_user_id}/apps", creatorAppsResponseSchema],
      ["GET /v1/creators/{mozaiks_user_id}/statements/", statementResponseSchema],
    ] as const;
    let checked = 0;
    for (const section of doc.split(/^### /m).slice(1)) {
      const heading = section.slice(0, section.indexOf("\n")).replaceAll("`", "");
      const schema = schemas.find(([prefix]) => heading.startsWith(prefix))?.[1];
      assert.ok(schema, `a schema for the section ${heading}`);
      for (const [, json] of section.matchAll(/```json\n([\s\S]*?)```/g)) {
        const parsed = schema.safeParse(JSON.parse(json!));
        assert.ok(parsed.success, `${heading}: ${parsed.error?.message}`);
        checked++;
      }
    }
    assert.ok(checked >= 8, `${checked} examples checked`);
  });

  it("serves the dashboard and the OpenAPI document without a key", async () => {
    const page = await get("/", false);
    assert.equal(page.statusCode, 200);
    assert.match(page.headers["content-type"] as string, /text\/html/);
    assert.equal((await get("/assets/chart.umd.min.js", false)).statusCode, 200);
    const openapi = await get("/openapi.json", false);
    assert.ok(openapi.json().paths["/v1/records"]);
  });
});
