import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import { loadServeConfig } from "../../pipeline/api/config.ts";
import type { IngestProducer } from "../../pipeline/api/ingest-producer.ts";
import { checkRecords } from "../../pipeline/api/ingest-validate.ts";
import { createApiKey, findKey, parseApiKeys } from "../../pipeline/api/keys.ts";
import { monthPeriod } from "../../pipeline/api/reads/statement.ts";
import { statementCsv } from "../../pipeline/api/reads/statement-csv.ts";
import { buildApi } from "../../pipeline/api/server.ts";
import type { ReadStores } from "../../pipeline/api/stores.ts";
import { loadConfig } from "../../pipeline/config.ts";
import { createLogger } from "../../pipeline/log.ts";
import {
  ingestBodySchema,
  type StatementResponse,
  statementParamsSchema,
  usageQuerySchema,
} from "../../schemas/api.ts";

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
  const policy = { maxRecordBytes: 65_536, mayCredit: false };

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

  it("statements: a month is YYYY-MM, and covers [first day, first day of the next) in UTC", () => {
    assert.equal(statementParamsSchema.safeParse({ mozaiks_user_id: "c", month: "2026-13" }).success, false);
    assert.equal(statementParamsSchema.safeParse({ mozaiks_user_id: "c", month: "2026-1" }).success, false);
    assert.deepEqual(monthPeriod("2026-12"), {
      from: "2026-12-01T00:00:00.000Z",
      to: "2027-01-01T00:00:00.000Z",
    });
  });

  it("statement CSV: a row per app, a total, and the reconciliation line", () => {
    const m = (usd: string, micros: string) => ({ usd, micros });
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
        },
      ],
      total: {
        records: 2,
        billed: m("1", "1000000"),
        creator_share: m("0.7", "700000"),
        platform_fee: m("0.3", "300000"),
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
      "mozaiks_user_id,month,enterprise_id,records,billed_usd,creator_share_usd,platform_fee_usd",
      "c,2026-11,a,2,1,0.7,0.3",
      "c,2026-11,TOTAL,2,1,0.7,0.3",
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

  it("serves the dashboard and the OpenAPI document without a key", async () => {
    const page = await get("/", false);
    assert.equal(page.statusCode, 200);
    assert.match(page.headers["content-type"] as string, /text\/html/);
    assert.equal((await get("/assets/chart.umd.min.js", false)).statusCode, 200);
    const openapi = await get("/openapi.json", false);
    assert.ok(openapi.json().paths["/v1/records"]);
  });
});
