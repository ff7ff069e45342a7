import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { priceUsage, tokenTotals } from "../../pipeline/core/index.ts";
import {
  DEFAULT_MAX_RECORD_BYTES,
  decodeRecord,
  fastInputRecord,
  priceBookSchema,
  usageRecordSchema,
} from "../../schemas/index.ts";
import { accountOf, config, ofKind, run, usage } from "./builders.ts";

const book = priceBookSchema.parse({
  entries: [
    {
      price_id: "m-1",
      model: "m",
      effective_from: "2025-01-01T00:00:00Z",
      prompt_micros_per_mtok: 2_000_000,
      completion_micros_per_mtok: 8_000_000,
    },
    {
      price_id: "m-2",
      model: "m",
      effective_from: "2025-06-01T00:00:00Z",
      prompt_micros_per_mtok: 2_000_000,
      completion_micros_per_mtok: 8_000_000,
      cached_prompt_micros_per_mtok: 500_000,
      reasoning_micros_per_mtok: 12_000_000,
      audio_micros_per_mtok: 40_000_000,
    },
  ],
});
const cfg = config({ price_book: book });

function record(agent: Record<string, number>, occurredAt = "2025-07-28T10:00:00Z") {
  return usage({
    model: "m",
    occurred_at: occurredAt,
    agent_usage: { A: { prompt_tokens: 0, completion_tokens: 0, ...agent } },
  });
}

describe("token classes", () => {
  test("Given every class with its own price, Then each is priced at it, once rounded per record", () => {
    const priced = priceUsage(
      record({
        prompt_tokens: 1_000,
        completion_tokens: 1_000,
        cached_prompt_tokens: 3,
        reasoning_tokens: 1_000,
        audio_tokens: 1_000,
      }),
      cfg,
    );
    assert.ok(priced.ok);
    // 2,000 + 8,000 + 1.5 + 12,000 + 40,000 = 62,001.5 -> 62,002 (half up, once)
    assert.equal(priced.cost_micros, 62_002n);
    assert.equal(priced.agents.A!.cached_prompt_tokens, 3);
  });

  test("Given an entry without class prices, Then cached falls back to the prompt price and reasoning to the completion price", () => {
    const priced = priceUsage(
      record(
        { prompt_tokens: 0, completion_tokens: 0, cached_prompt_tokens: 1_000, reasoning_tokens: 1_000 },
        "2025-03-01T00:00:00Z",
      ),
      cfg,
    );
    assert.ok(priced.ok);
    assert.equal(priced.cost_micros, 2_000n + 8_000n);
    assert.deepEqual(priced.price_ids, ["m-1"]);
  });

  test("Given audio tokens on an entry without an audio price, Then the record is rejected UNPRICED_TOKEN_CLASS and changes nothing", () => {
    const { state, outputs } = run(
      [record({ prompt_tokens: 10, completion_tokens: 10, audio_tokens: 5 }, "2025-03-01T00:00:00Z")],
      cfg,
    );
    const [rejected] = ofKind(outputs, "rejected");
    assert.equal(rejected?.code, "UNPRICED_TOKEN_CLASS");
    assert.match(rejected!.reason, /audio/);
    assert.deepEqual(state.accounts, {});
  });

  test("Given zero audio tokens on an entry without an audio price, Then nothing is unpriced", () => {
    const priced = priceUsage(
      record({ prompt_tokens: 10, completion_tokens: 0, audio_tokens: 0 }, "2025-03-01T00:00:00Z"),
      cfg,
    );
    assert.ok(priced.ok);
    assert.equal(priced.cost_micros, 20n);
  });

  test("Given class tokens, Then they count in tokens_used, the budget draw and the chat, and the outcome names them", () => {
    const { state, outputs } = run(
      [
        record({
          prompt_tokens: 100,
          completion_tokens: 200,
          cached_prompt_tokens: 300,
          reasoning_tokens: 400,
        }),
      ],
      cfg,
    );
    const [outcome] = ofKind(outputs, "usage_outcome");
    assert.equal(outcome?.tokens_used, 1_000);
    assert.equal(outcome?.cached_prompt_tokens, 300);
    assert.equal(outcome?.reasoning_tokens, 400);
    assert.equal("audio_tokens" in outcome!, false);
    assert.equal(outcome?.trial_tokens_used, 1_000);
    const account = accountOf(state);
    assert.equal(account.tokens_used, 1_000);
    assert.equal(account.chats["chat-1"]!.total_tokens, 1_000);
  });

  test("Given a record without classes, Then its outcome has no class fields (as before)", () => {
    const { outputs } = run([record({ prompt_tokens: 100, completion_tokens: 200 })], cfg);
    const [outcome] = ofKind(outputs, "usage_outcome");
    for (const field of ["cached_prompt_tokens", "reasoning_tokens", "audio_tokens"]) {
      assert.equal(field in outcome!, false, field);
      assert.equal(field in outcome!.agents.A!, false, field);
    }
  });

  test("Given the default price book, Then gpt-4o's 2024-10 cached price is $1.25/M and its 2024-05 entry falls back to the prompt price", () => {
    const at = (occurredAt: string) =>
      priceUsage(
        usage({
          model: "gpt-4o",
          occurred_at: occurredAt,
          agent_usage: { A: { prompt_tokens: 0, completion_tokens: 0, cached_prompt_tokens: 1_000_000 } },
        }),
        config(),
      );
    const now = at("2025-07-28T10:00:00Z");
    const before = at("2024-06-01T00:00:00Z");
    assert.ok(now.ok && before.ok);
    assert.equal(now.cost_micros, 1_250_000n);
    assert.equal(before.cost_micros, 5_000_000n);
  });

  test("Given the fast decode path, Then class fields decode exactly as zod parses them", () => {
    const json = {
      type: "usage",
      record_id: "u-1",
      level: "platform",
      enterprise_id: "app_1",
      mozaiks_user_id: "creator_1",
      workflow_type: "w",
      workflow_name: "w",
      session_id: "s",
      chat_id: "c",
      agent_usage: {
        A: {
          prompt_tokens: 1,
          completion_tokens: 2,
          cached_prompt_tokens: 3,
          reasoning_tokens: 4,
          audio_tokens: 5,
        },
      },
      occurred_at: "2025-07-28T10:00:00Z",
    };
    const decoded = decodeRecord(JSON.stringify(json), { maxBytes: DEFAULT_MAX_RECORD_BYTES });
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.record, usageRecordSchema.parse(json));
    assert.deepEqual(fastInputRecord(json), usageRecordSchema.parse(json));
    const bad = decodeRecord(
      JSON.stringify({
        ...json,
        agent_usage: { A: { prompt_tokens: 1, completion_tokens: 2, audio_tokens: -1 } },
      }),
      { maxBytes: DEFAULT_MAX_RECORD_BYTES },
    );
    assert.equal(bad.ok, false);
  });

  test("Property: cost is the exact sum of class parts, rounded half up once; tokenTotals counts every class", () => {
    const count = fc.integer({ min: 0, max: 1_000_000 });
    fc.assert(
      fc.property(count, count, count, count, count, (p, c, cached, r, a) => {
        const agent = {
          prompt_tokens: p,
          completion_tokens: c,
          cached_prompt_tokens: cached,
          reasoning_tokens: r,
          audio_tokens: a,
        };
        const priced = priceUsage(record(agent), cfg);
        assert.ok(priced.ok);
        const numerator =
          BigInt(p) * 2_000_000n +
          BigInt(c) * 8_000_000n +
          BigInt(cached) * 500_000n +
          BigInt(r) * 12_000_000n +
          BigInt(a) * 40_000_000n;
        assert.equal(priced.cost_micros, (2n * numerator + 1_000_000n) / 2_000_000n);
        assert.equal(tokenTotals({ A: agent }).total_tokens, p + c + cached + r + a);
      }),
    );
  });
});
