import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { generateWorkload, prng } from "../../pipeline/simulate/workload.ts";
import {
  bigintReplacer,
  decodeRecord,
  FAST_RECORD_TYPES,
  fastInputRecord,
  formatIssues,
  inputRecordSchema,
} from "../../schemas/index.ts";

/**
 * schemas/fast-record.ts must accept exactly what the zod schemas accept and return exactly what they
 * return; decodeRecord must answer as zod alone would (same code, reason text and paths). Checked on a
 * generated corpus: valid records of both levels and every type (in the schemas' field order, which the
 * decoder returns as they are, and in another order, which it copies), and the same records broken one field
 * at a time (missing, wrong type, out of range, bad id, unknown key, reserved agent name, the level and
 * pause rules, micros and token bounds, dates).
 */

const WEIRD: unknown[] = [
  null,
  true,
  "",
  " ",
  "x",
  "X".repeat(129),
  "a".repeat(48),
  "a".repeat(49),
  "A-1",
  "a.b",
  "a:b",
  "a/b",
  "_a",
  "constructor",
  "user_requested",
  "Pause",
  0,
  -0,
  -1,
  1,
  1.5,
  2,
  86_400_000,
  86_400_001,
  1_000_000,
  1_000_001,
  1e12,
  1e12 + 1,
  2 ** 53 - 1,
  2 ** 53,
  1e21,
  "0",
  "01",
  "12",
  "-1",
  "1.5",
  "9223372036854775807",
  "9223372036854775808",
  "1".repeat(30),
  "1".repeat(31),
  "2024-02-29T00:00:00Z",
  "2026-02-29T00:00:00Z",
  "2026-01-05T09:00:00",
  "2026-01-05T09:00:00.123456+05:30",
  "2026-01-05T09:00:00z",
  "2026-01-05T24:00:00Z",
  "2026-01-05",
  "usage",
  "credit",
  "session",
  "hold",
  "release",
  "platform",
  "app_usage",
  "top_up",
  "grant",
  "budget_set",
  "start",
  "pause",
  "resume",
  "finalize",
  "active",
  "gpt-4o",
  [],
  {},
  { prompt_tokens: 1, completion_tokens: 2 },
];

/** Text variants of one valid record's JSON: the record, and it broken in every way listed above. */
function variants(json: Record<string, unknown>, random: () => number): string[] {
  const out: string[] = [JSON.stringify(json)];
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length)]!;
  const keys = [...Object.keys(json), "schema_version", "platform_user_id", "pause_reason", "amount_micros"];
  for (const key of keys) {
    const without = { ...json };
    delete without[key];
    out.push(JSON.stringify(without));
    for (let i = 0; i < 6; i++) out.push(JSON.stringify({ ...json, [key]: pick(WEIRD) }));
  }
  // The same fields in another order: valid, but not in the order zod returns them (so it is copied).
  out.push(JSON.stringify(Object.fromEntries(Object.entries(json).reverse())));
  out.push(JSON.stringify({ ...json, tokens_used: 5 }));
  out.push(JSON.stringify({ ...json, schema_version: 1 }));
  out.push(JSON.stringify({ ...json, schema_version: 2 }));
  out.push(`{"__proto__":{"x":1},${JSON.stringify(json).slice(1)}`);
  out.push(JSON.stringify({ ...json, level: json.level === "platform" ? "app_usage" : "platform" }));
  const agents = json.agent_usage as Record<string, Record<string, unknown>> | undefined;
  if (agents !== undefined) {
    const [name, agent] = Object.entries(agents)[0]!;
    out.push(JSON.stringify({ ...json, agent_usage: {} }));
    out.push(
      JSON.stringify({
        ...json,
        agent_usage: Object.fromEntries(Array.from({ length: 64 }, (_, i) => [`A${i}`, agent])),
      }),
    );
    out.push(
      JSON.stringify({
        ...json,
        agent_usage: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`A${i}`, agent])),
      }),
    );
    out.push(JSON.stringify({ ...json, agent_usage: { ...agents, "9": agent, "10": agent } }));
    for (const reserved of ["constructor", "prototype", "bad name", "_x"])
      out.push(JSON.stringify({ ...json, agent_usage: { ...agents, [reserved]: agent } }));
    const text = JSON.stringify(json);
    out.push(text.replace('"agent_usage":{', `"agent_usage":{"__proto__":${JSON.stringify(agent)},`));
    for (const field of [
      "prompt_tokens",
      "completion_tokens",
      "model",
      "response_time_ms",
      "message_count",
      "extra",
    ]) {
      const without = { ...agent };
      delete without[field];
      out.push(JSON.stringify({ ...json, agent_usage: { ...agents, [name]: without } }));
      for (let i = 0; i < 6; i++)
        out.push(
          JSON.stringify({ ...json, agent_usage: { ...agents, [name]: { ...agent, [field]: pick(WEIRD) } } }),
        );
    }
  }
  return out;
}

function corpus(): string[] {
  const random = prng(18);
  const texts: string[] = [];
  const bases = [
    ...generateWorkload({
      records: 400,
      apps: 3,
      usersPerApp: 4,
      seed: 5,
      startAt: "2026-01-05T09:00:00.000Z",
    }),
    ...generateWorkload({
      records: 200,
      platformShare: 0.6,
      topUpShare: 0.2,
      seed: 9,
      startAt: "2026-01-05T09:00:00+02:00",
    }),
  ] as Record<string, unknown>[];
  // Every shape of record the workload makes, a few of each (type, event or kind, level).
  const seen = new Map<string, number>();
  for (const json of bases) {
    const shape = `${json.type}/${json.event ?? json.kind ?? ""}/${json.level}`;
    const n = seen.get(shape) ?? 0;
    seen.set(shape, n + 1);
    if (n >= 6) continue;
    texts.push(...variants(json, random));
  }
  // Holds and releases (the workload makes none), of both levels, with a hold's own rules: at least one
  // token, and an expiry after occurred_at (compared as instants, across offsets).
  for (const level of ["platform", "app_usage"] as const) {
    const ids = {
      level,
      enterprise_id: "app-1",
      mozaiks_user_id: "creator-1",
      ...(level === "app_usage" ? { platform_user_id: "user-1" } : {}),
    };
    const hold = {
      type: "hold",
      schema_version: 1,
      record_id: `h-${level}`,
      ...ids,
      chat_id: "chat-1",
      hold_id: "hold-1",
      tokens: 1_500,
      expires_at: "2026-01-05T09:05:00Z",
      occurred_at: "2026-01-05T09:00:00Z",
    };
    texts.push(...variants(hold, random));
    for (const [tokens, expires_at] of [
      [1, "2026-01-05T09:00:00.001Z"],
      [0, "2026-01-05T09:05:00Z"],
      [1_000_000, "2026-01-05T09:00:00Z"],
      [5, "2026-01-05T08:59:59.999Z"],
      [5, "2026-01-05T11:00:00+02:00"],
      [5, "2026-01-05T11:00:01+02:00"],
    ] as const)
      texts.push(JSON.stringify({ ...hold, tokens, expires_at }));
    texts.push(
      ...variants(
        {
          type: "release",
          schema_version: 1,
          record_id: `r-${level}`,
          ...ids,
          hold_id: "hold-1",
          occurred_at: "2026-01-05T09:01:00Z",
        },
        random,
      ),
    );
  }
  // Credits without amount_micros and with a number; a paused session with and without a reason.
  texts.push(
    JSON.stringify({
      type: "credit",
      record_id: "c-1",
      kind: "grant",
      level: "platform",
      enterprise_id: "app",
      mozaiks_user_id: "m",
      tokens: 5,
      occurred_at: "2026-01-05T09:00:00Z",
    }),
    JSON.stringify({
      type: "session",
      record_id: "s-1",
      event: "pause",
      level: "platform",
      enterprise_id: "app",
      mozaiks_user_id: "m",
      session_id: "s",
      chat_id: "c",
      workflow_name: "w",
      occurred_at: "2026-01-05T09:00:00Z",
    }),
    "[]",
    "null",
    "1",
    '"usage"',
    "{}",
    '{"type":"other"}',
  );
  return texts;
}

/** decodeRecord as it was before the fast path: zod alone. */
function zodDecode(json: unknown) {
  const parsed = inputRecordSchema.safeParse(json);
  return parsed.success
    ? { ok: true as const, record: parsed.data }
    : { ok: false as const, code: "RECORD_INVALID" as const, reason: formatIssues(parsed.error.issues) };
}

describe("fast record validation (schemas/fast-record.ts)", () => {
  it("is on for every record type", () => {
    assert.deepEqual(FAST_RECORD_TYPES, {
      usage: true,
      credit: true,
      session: true,
      hold: true,
      release: true,
    });
  });

  it("accepts exactly what zod accepts, returns what zod returns, and decodeRecord reports as zod does", () => {
    let accepted = 0;
    let rejected = 0;
    for (const text of corpus()) {
      const json = JSON.parse(text) as unknown;
      const expected = inputRecordSchema.safeParse(json);
      const fast = fastInputRecord(json);
      assert.equal(
        fast !== undefined,
        expected.success,
        `fast ${fast !== undefined}, zod ${expected.success}: ${text}`,
      );
      if (expected.success) {
        accepted++;
        assert.deepStrictEqual(fast, expected.data, text);
        // Same keys in the same order (outputs and documents are built from records).
        assert.equal(
          JSON.stringify(fast, bigintReplacer),
          JSON.stringify(expected.data, bigintReplacer),
          text,
        );
      } else {
        rejected++;
      }
      assert.deepStrictEqual(decodeRecord(text, { maxBytes: 1 << 20 }), zodDecode(json), text);
    }
    assert.ok(accepted > 200, `accepted ${accepted}`);
    assert.ok(rejected > 2_000, `rejected ${rejected}`);
  });
});
