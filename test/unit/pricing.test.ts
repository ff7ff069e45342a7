import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { divideRoundHalfUp, findPrice, priceUsage } from "../../pipeline/core/index.ts";
import { config, ofKind, run, usage } from "./builders.ts";

const book = {
  entries: [
    {
      price_id: "m-old",
      model: "m",
      effective_from: "2025-01-01T00:00:00Z",
      prompt_micros_per_mtok: 1_000_000,
      completion_micros_per_mtok: 2_000_000,
    },
    {
      price_id: "m-new",
      model: "m",
      effective_from: "2025-07-01T00:00:00Z",
      prompt_micros_per_mtok: 3_000_000,
      completion_micros_per_mtok: 3_000_000,
    },
    {
      price_id: "d",
      model: "default",
      effective_from: "2025-01-01T00:00:00Z",
      prompt_micros_per_mtok: 30_000_000,
      completion_micros_per_mtok: 30_000_000,
    },
  ],
};
const cfg = config({ price_book: book });

describe("price book", () => {
  test("Given two prices of a model, When looked up by event time, Then the latest one in force wins", () => {
    assert.equal(findPrice(book, "m", Date.parse("2025-06-30T23:59:59Z"))?.price_id, "m-old");
    assert.equal(findPrice(book, "m", Date.parse("2025-07-01T00:00:00Z"))?.price_id, "m-new");
    assert.equal(findPrice(book, "m", Date.parse("2024-12-31T00:00:00Z")), undefined);
  });
  test("Given a replayed old record, When priced, Then it uses the price of its own time", () => {
    const old = priceUsage(
      usage({ model: "m", occurred_at: "2025-03-01T00:00:00Z", ...agents(1000, 1000) }),
      cfg,
    );
    const recent = priceUsage(
      usage({ model: "m", occurred_at: "2025-08-01T00:00:00Z", ...agents(1000, 1000) }),
      cfg,
    );
    assert.deepEqual(old.ok && [old.cost_micros, old.price_ids], [3000n, ["m-old"]]);
    assert.deepEqual(recent.ok && [recent.cost_micros, recent.price_ids], [6000n, ["m-new"]]);
  });
  test("Given several agents, Then the record's cost is rounded once, half up, on the exact sum", () => {
    // 1 token at 1 micro/mtok... each agent alone is 0.5 micro; rounded per agent it would be 2, per record 1.
    const half = { prompt_micros_per_mtok: 500_000, completion_micros_per_mtok: 0 };
    const halfBook = {
      entries: [{ price_id: "h", model: "default", effective_from: "2025-01-01T00:00:00Z", ...half }],
    };
    const record = usage({
      agent_usage: {
        A: { prompt_tokens: 1, completion_tokens: 0 },
        B: { prompt_tokens: 1, completion_tokens: 0 },
      },
    });
    const priced = priceUsage(record, config({ price_book: halfBook }));
    assert.equal(priced.ok && priced.cost_micros, 1n);
    assert.equal(divideRoundHalfUp(5n, 10n), 1n);
    assert.equal(divideRoundHalfUp(4n, 10n), 0n);
    assert.equal(divideRoundHalfUp(15n, 10n), 2n);
  });
  test("Given no model on the agent or record, Then the default model's price is used", () => {
    const priced = priceUsage(usage(agents(500, 0)), cfg);
    assert.deepEqual(priced.ok && [priced.cost_micros, priced.agents.A?.model], [15_000n, "default"]);
  });
  test("Given an agent model, Then it overrides the record's model", () => {
    const record = usage({
      model: "default",
      agent_usage: { A: { prompt_tokens: 1000, completion_tokens: 0, model: "m" } },
      occurred_at: "2025-08-01T00:00:00Z",
    });
    const priced = priceUsage(record, cfg);
    assert.deepEqual(priced.ok && priced.price_ids, ["m-new"]);
  });
  test("Given an unknown model and unknown_model=dead_letter, Then the record is rejected UNKNOWN_MODEL and nothing changes", () => {
    const { state, outputs } = run([usage({ model: "mystery" })], cfg);
    assert.deepEqual(
      outputs.map((output) => output.kind),
      ["rejected"],
    );
    assert.equal(ofKind(outputs, "rejected")[0]?.code, "UNKNOWN_MODEL");
    assert.deepEqual(state.accounts, {});
  });
  test("Given an unknown model and unknown_model=default_price, Then it is priced as default and flagged", () => {
    const { outputs } = run(
      [usage({ model: "mystery", ...agents(1000, 0) })],
      config({ price_book: book, unknown_model: "default_price" }),
    );
    const outcome = ofKind(outputs, "usage_outcome")[0]!;
    assert.equal(outcome.cost_micros, 30_000n);
    assert.deepEqual(outcome.agents.A, {
      model: "mystery",
      price_id: "d",
      price_fallback: true,
      prompt_tokens: 1000,
      completion_tokens: 0,
      response_time_ms: null,
      message_count: null,
    });
  });
  test("Given a price book with duplicate ids, Then the config is invalid", () => {
    assert.throws(
      () => config({ price_book: { entries: [book.entries[0]!, book.entries[0]!] } }),
      /duplicate/,
    );
  });
});

function agents(prompt: number, completion: number) {
  return { agent_usage: { A: { prompt_tokens: prompt, completion_tokens: completion } } };
}
