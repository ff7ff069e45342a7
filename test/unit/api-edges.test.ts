import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { FastifyInstance } from "fastify";
import type { BudgetStates } from "../../pipeline/api/budgets.ts";
import { loadServeConfig } from "../../pipeline/api/config.ts";
import type { IngestProducer } from "../../pipeline/api/ingest-producer.ts";
import { createApiKey, parseApiKeys } from "../../pipeline/api/keys.ts";
import { AppOwnership, type OwnersPolicy } from "../../pipeline/api/ownership.ts";
import { monthPeriod } from "../../pipeline/api/reads/statement.ts";
import { buildApi } from "../../pipeline/api/server.ts";
import type { ReadStores } from "../../pipeline/api/stores.ts";
import { loadConfig } from "../../pipeline/config.ts";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { createLogger } from "../../pipeline/log.ts";
import type { IngestResponse, StatementResponse } from "../../schemas/api.ts";
import type { PreparedRecord } from "../../sdk/validate.ts";
import type { MongoLayout } from "../../sinks/mongo/layout.ts";

/**
 * Edges of the HTTP API found by attacking its inputs, each answered in process (inject) by a server
 * over in-memory stores: documents by database and collection, ClickHouse rows by a function of the
 * query, and a producer that keeps what it was sent.
 */

type Row = Record<string, string>;
type Docs = Record<string, Record<string, Record<string, unknown>[]>>;

const keys = {
  ada: createApiKey("ada", { kind: "creator", mozaiksUserId: "ada" }),
  bob: createApiKey("bob", { kind: "creator", mozaiksUserId: "bob" }),
  ingest: createApiKey("ingest", { kind: "ingest" }),
  read: createApiKey("read", { kind: "read" }),
  admin: createApiKey("admin", { kind: "admin" }),
};

function fakeLayout(docs: Docs): MongoLayout {
  const collection = (db: string, name: string) => {
    const matching = (filter: Record<string, unknown> = {}) =>
      (docs[db]?.[name] ?? []).filter((doc) => Object.entries(filter).every(([k, v]) => doc[k] === v));
    const cursor = (found: Record<string, unknown>[]) => {
      const self = { sort: () => self, limit: () => self, toArray: async () => found };
      return self;
    };
    return {
      findOne: async (filter: Record<string, unknown>) => matching(filter)[0] ?? null,
      find: (filter?: Record<string, unknown>) => cursor(matching(filter)),
    };
  };
  return {
    platform: () => ({ collection: (name: string) => collection("platform", name) }),
    app: (id: string) => ({ collection: (name: string) => collection(`app:${id}`, name) }),
  } as unknown as MongoLayout;
}

interface ServerOptions {
  docs?: Docs;
  rows?: (query: string, params: Record<string, string>) => Row[];
  pins?: Record<string, { creator: string }>;
  policy?: OwnersPolicy;
}

async function server(options: ServerOptions = {}) {
  const sent: PreparedRecord[] = [];
  const layout = fakeLayout(options.docs ?? {});
  const clickhouse = {
    query: async ({ query, query_params }: { query: string; query_params: Record<string, string> }) => ({
      json: async () => options.rows?.(query, query_params) ?? [],
    }),
  };
  const serve = loadServeConfig({
    AGENTMETER_API_KEYS: Object.values(keys)
      .map((key) => key.entry)
      .join(","),
  });
  const app = await buildApi({
    pipeline: loadConfig({}),
    settings: serve.serve,
    producer: {
      send: async (prepared: PreparedRecord) => void sent.push(prepared),
    } as unknown as IngestProducer,
    stores: { layout, clickhouse, database: "agentmeter" } as unknown as ReadStores,
    owners: new AppOwnership(options.pins ?? {}, layout, options.policy ?? "pinned_then_projection"),
    budgets: {} as BudgetStates,
    billing: parseBillingConfig({}),
    logger: createLogger("silent"),
  });
  return { app, sent };
}

const bearer = (secret: string) => ({ authorization: `Bearer ${secret}` });

const usage = {
  type: "usage",
  level: "app_usage",
  enterprise_id: "app-1",
  mozaiks_user_id: "ada",
  platform_user_id: "u1",
  workflow_type: "chat",
  workflow_name: "wf",
  session_id: "s1",
  chat_id: "c1",
  agent_usage: { A: { prompt_tokens: 10, completion_tokens: 5 } },
  occurred_at: "2026-11-03T10:00:00Z",
};

describe("a creator's statement never shows a figure that may hold another creator's money", () => {
  // ada-notes is pinned to ada, but before the pin bob's end users used it: its ledger (the whole app's)
  // holds bob's 50 micros beside ada's 100. ada-chat's ledger is ada's alone and agrees.
  const ledger = (records: number, billed: number) => ({
    records,
    billed_micros: String(billed),
    creator_share_micros: String((billed * 7) / 10),
    platform_fee_micros: String((billed * 3) / 10),
  });
  const clickhouseRow = (app: string, records: number, billed: number): Row => ({
    enterprise_id: app,
    records: String(records),
    billed_records: String(records),
    tokens: "10",
    billed: String(billed),
    creator: String((billed * 7) / 10),
    fee: String((billed * 3) / 10),
  });

  it("a pinned app whose ledger differs is named in differing_apps, and nothing of it is summed", async () => {
    const { app } = await server({
      pins: { "ada-notes": { creator: "ada" }, "ada-chat": { creator: "ada" } },
      docs: {
        "app:ada-notes": { RevenueSharing: [ledger(3, 150)] },
        "app:ada-chat": { RevenueSharing: [ledger(4, 1000)] },
      },
      rows: (query, params) =>
        query.includes("usage_events") && params.creator === "ada"
          ? [clickhouseRow("ada-chat", 4, 1000), clickhouseRow("ada-notes", 2, 100)]
          : [],
    });
    try {
      const answer = await app.inject({
        method: "GET",
        url: "/v1/creators/ada/statements/2026-11",
        headers: bearer(keys.ada.secret),
      });
      assert.equal(answer.statusCode, 200, answer.body);
      const { reconciliation } = answer.json() as StatementResponse;
      assert.deepEqual(reconciliation, {
        agrees: false,
        clickhouse_billed: { micros: "1000", usd: "0.001" },
        mongodb_billed: { micros: "1000", usd: "0.001" },
        clickhouse_records: 4,
        mongodb_records: 4,
        differing_apps: ["ada-notes"],
      });
    } finally {
      await app.close();
    }
  });
});

describe("AGENTMETER_API_APP_OWNERS=pinned: an unpinned app belongs to no creator", () => {
  let app: FastifyInstance;
  before(async () => {
    ({ app } = await server({ policy: "pinned", docs: { platform: { Enterprises: [] } } }));
  });
  after(() => app?.close());

  const range = "from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z";
  const urls = [
    "/v1/apps/free-app/paused-chats",
    `/v1/apps/free-app/usage?${range}`,
    `/v1/apps/free-app/agents/top?${range}`,
  ];

  it("read and admin keys still read it (docs/api.md)", async () => {
    for (const key of [keys.read, keys.admin])
      for (const url of urls) {
        const answer = await app.inject({ method: "GET", url, headers: bearer(key.secret) });
        assert.equal(answer.statusCode, 200, `${url}: ${answer.body}`);
      }
  });

  it("a creator's key gets 404, as for an app that does not exist", async () => {
    for (const url of urls) {
      const answer = await app.inject({ method: "GET", url, headers: bearer(keys.bob.secret) });
      assert.equal(answer.statusCode, 404, url);
    }
  });
});

describe("statement months", () => {
  it("a month's period is in the month's own year, years 0000-0099 included", () => {
    assert.deepEqual(monthPeriod("0050-03"), {
      from: "0050-03-01T00:00:00.000Z",
      to: "0050-04-01T00:00:00.000Z",
    });
    assert.deepEqual(monthPeriod("0099-12"), {
      from: "0099-12-01T00:00:00.000Z",
      to: "0100-01-01T00:00:00.000Z",
    });
  });

  it("only 1970-01 to 2299-11 may be asked for: others are a 400 naming params.month, no store read", async () => {
    const { app } = await server({
      rows: () => {
        throw new Error("ClickHouse was read");
      },
    });
    try {
      for (const month of ["0000-01", "0050-03", "1969-12", "2299-12", "9999-12"]) {
        const answer = await app.inject({
          method: "GET",
          url: `/v1/creators/ada/statements/${month}`,
          headers: bearer(keys.admin.secret),
        });
        assert.equal(answer.statusCode, 400, month);
        assert.deepEqual(answer.json().error.fields, ["params.month"], month);
        assert.match(answer.json().error.message, /1970-01 to 2299-11/);
      }
    } finally {
      await app.close();
    }
  });
});

describe("the router's own refusals answer in the API's error format", () => {
  let app: FastifyInstance;
  before(async () => {
    ({ app } = await server());
  });
  after(() => app?.close());

  const refused = async (url: string, field: string, quoted: string) => {
    const answer = await app.inject({ method: "GET", url, headers: bearer(keys.admin.secret) });
    assert.equal(answer.statusCode, 400, answer.body);
    const { error } = answer.json() as { error: { code: string; message: string; fields: string[] } };
    assert.equal(error.code, "REQUEST_INVALID");
    assert.deepEqual(error.fields, [field]);
    assert.ok(!answer.body.includes("FST_ERR"), answer.body);
    assert.ok(!answer.body.includes(quoted), `the URL is echoed: ${answer.body}`);
    return error.message;
  };

  it("a path parameter over 200 characters: REQUEST_INVALID, not Fastify's 414 quoting the URL", async () => {
    const message = await refused(`/v1/apps/${"a".repeat(201)}/paused-chats`, "params", "aaaaaaaa");
    assert.match(message, /longer than 200 characters/);
  });

  it("a bad percent-encoding: REQUEST_INVALID, not Fastify's FST_ERR_BAD_URL", async () => {
    const message = await refused("/v1/accounts/platform/%E0%A4%A", "url", "%E0");
    assert.match(message, /percent-encoded/);
  });
});

describe("POST /v1/records: the body's shape", () => {
  let app: FastifyInstance;
  let sent: PreparedRecord[];
  before(async () => {
    ({ app, sent } = await server());
  });
  after(() => app?.close());

  const post = (payload: string, contentType = "application/json") => {
    sent.length = 0;
    return app.inject({
      method: "POST",
      url: "/v1/records",
      headers: { ...bearer(keys.ingest.secret), "content-type": contentType },
      payload,
    });
  };

  it("more records than AGENTMETER_API_MAX_BATCH: the message names the limit", async () => {
    const answer = await post(JSON.stringify(Array.from({ length: 1001 }, () => usage)));
    assert.equal(answer.statusCode, 400);
    assert.deepEqual(answer.json().error.fields, ["body"]);
    assert.match(answer.json().error.message, /at most 1000 records/);
    assert.equal(sent.length, 0);
  });

  it("an element that is not an object is rejected by index; the valid records beside it go on", async () => {
    const answer = await post(JSON.stringify([usage, 5, null, [usage]]));
    assert.equal(answer.statusCode, 202, answer.body);
    const body = answer.json() as IngestResponse;
    assert.deepEqual([body.accepted, body.rejected], [1, 3]);
    assert.equal(body.results[0]?.status, "accepted");
    for (const [index, kind] of [
      [1, "a number"],
      [2, "null"],
      [3, "an array"],
    ] as const) {
      const result = body.results[index];
      assert.ok(result?.status === "rejected", JSON.stringify(result));
      assert.deepEqual([result.index, result.code, result.record_id], [index, "RECORD_INVALID", null]);
      assert.match(result.message, new RegExp(`element ${index} is not a record: .*got ${kind}`));
    }
    assert.equal(sent.length, 1);
  });

  it("a body that is neither an object nor an array says what it must be", async () => {
    const answer = await post("42");
    assert.equal(answer.statusCode, 400);
    assert.match(
      answer.json().error.message,
      /one record \(a JSON object\) or an array of 1 to 1000 records/,
    );
  });

  it("a body sent as text/plain: the message says application/json is expected", async () => {
    const answer = await post(JSON.stringify(usage), "text/plain");
    assert.equal(answer.statusCode, 400);
    assert.deepEqual(answer.json().error.fields, ["content-type"]);
    assert.match(answer.json().error.message, /application\/json/);
    assert.equal(sent.length, 0);
  });

  it("a number that denotes a fraction but reads as an integer: the request is refused naming it, nothing sent; Fastify's own refusals stay", async () => {
    const exact = JSON.stringify([usage, usage]);
    const rounded = exact.replace('"prompt_tokens":10', '"prompt_tokens":10.0000000000000001');
    assert.notEqual(rounded, exact);
    const answer = await post(rounded);
    assert.equal(answer.statusCode, 400, answer.body);
    assert.deepEqual(answer.json().error.fields, ["body"]);
    assert.match(answer.json().error.message, /number 10\.0000000000000001 is not an integer/);
    assert.equal(sent.length, 0);
    assert.equal((await post(exact)).statusCode, 202);
    assert.equal(sent.length, 2);
    const poisoned = await post('{"__proto__":{"x":1}}');
    assert.equal(poisoned.statusCode, 400, poisoned.body);
    assert.equal((await post("{not json")).json().error.message, "the body is not valid JSON");
  });

  it("a rejected record sent without record_id: its result names the id its message does", async () => {
    const answer = await post(JSON.stringify({ ...usage, agent_usage: {} }));
    const [result] = (answer.json() as IngestResponse).results;
    assert.ok(result?.status === "rejected", answer.body);
    assert.match(result.record_id ?? "", /^[0-9a-f-]{36}$/);
    assert.ok(result.message.startsWith(`record ${result.record_id} is invalid`), result.message);
  });
});

describe("the Authorization header", () => {
  let app: FastifyInstance;
  before(async () => {
    ({ app } = await server());
  });
  after(() => app?.close());

  // A bad route parameter: 400 once the caller is authenticated, so no store is read.
  const answer = (authorization: string) =>
    app.inject({ method: "GET", url: "/v1/apps/Not_Lower/paused-chats", headers: { authorization } });

  it("takes the Bearer scheme in any case (RFC 7235)", async () => {
    for (const scheme of ["bearer", "BEARER", "bEaReR"])
      assert.equal((await answer(`${scheme} ${keys.read.secret}`)).statusCode, 400, scheme);
  });

  it("says so when the header is there but not a bearer key, rather than that a key is required", async () => {
    for (const header of ["Basic Zm9vOmJhcg==", "Bearer", "Bearer   ", keys.read.secret]) {
      const refused = await answer(header);
      assert.equal(refused.statusCode, 401, header);
      assert.match(refused.json().error.message, /Authorization header is not a bearer key/, header);
      assert.ok(!refused.body.includes(keys.read.secret));
    }
    const none = await app.inject({ method: "GET", url: "/v1/apps/Not_Lower/paused-chats" });
    assert.match(none.json().error.message, /an API key is required/);
  });
});

describe("AGENTMETER_API_KEYS never prints a key pasted into it", () => {
  const key = createApiKey("x", { kind: "read" });
  const hash = "a".repeat(64);

  it("a key in an entry's name is refused, named by the entry's position only", () => {
    for (const text of [key.secret, `${key.secret}:${hash}:read`, `ok:${hash}:admin,${key.secret}`]) {
      assert.throws(
        () => parseApiKeys(text),
        (error: Error) => {
          assert.match(error.message, /entry [12] is invalid: the name starts with amk_/);
          assert.ok(!error.message.includes(key.secret.slice(4)), error.message);
          return true;
        },
      );
    }
  });

  it("keys create refuses such a name too", () => {
    assert.throws(() => createApiKey("amk_abc", { kind: "read" }), /starts with amk_/);
  });
});

describe("a store that does not answer", () => {
  it("is a 503 SERVICE_UNAVAILABLE, worth retrying, with no driver message; not a 500", async () => {
    const { app } = await server({
      rows: () => {
        throw Object.assign(new Error("connect ECONNREFUSED 10.0.0.9:8123 (user:secret)"), {
          code: "ECONNREFUSED",
        });
      },
    });
    try {
      const url = "/v1/apps/free-app/usage?from=2026-11-01T00:00:00Z&to=2026-11-02T00:00:00Z";
      const answer = await app.inject({ method: "GET", url, headers: bearer(keys.read.secret) });
      assert.equal(answer.statusCode, 503, answer.body);
      assert.equal(answer.json().error.code, "SERVICE_UNAVAILABLE");
      assert.doesNotMatch(answer.body, /ECONNREFUSED|secret|10\.0\.0\.9/);
    } finally {
      await app.close();
    }
  });
});
