import type { PriceBook } from "../../schemas/index.ts";

/**
 * Prices in micro-units of USD per 1,000,000 tokens. `default` is the catch-all for records that
 * name no model; at $30 per million tokens, 15,000 tokens cost 0.45, the figure of the example records
 * (test/unit/seed-examples.test.ts).
 * gpt-4o shows how a price change is recorded: a new entry with a later `effective_from`.
 * Cached prompt tokens have their providers' cache-read prices from the entries in force when prompt
 * caching existed (gpt-4o's 2024-05 entry predates it: a cached token there falls back to the prompt
 * price). None of these models reasons or takes audio: reasoning tokens fall back to the completion
 * price, and audio tokens are refused (UNPRICED_TOKEN_CLASS) rather than priced as text.
 */
export const defaultPriceBook: PriceBook = {
  entries: [
    {
      price_id: "default-2024-01",
      model: "default",
      effective_from: "2024-01-01T00:00:00Z",
      prompt_micros_per_mtok: 30_000_000,
      completion_micros_per_mtok: 30_000_000,
    },
    {
      price_id: "gpt-4o-2024-05",
      model: "gpt-4o",
      effective_from: "2024-05-13T00:00:00Z",
      prompt_micros_per_mtok: 5_000_000,
      completion_micros_per_mtok: 15_000_000,
    },
    {
      price_id: "gpt-4o-2024-10",
      model: "gpt-4o",
      effective_from: "2024-10-01T00:00:00Z",
      prompt_micros_per_mtok: 2_500_000,
      completion_micros_per_mtok: 10_000_000,
      cached_prompt_micros_per_mtok: 1_250_000,
    },
    {
      price_id: "gpt-4o-mini-2024-07",
      model: "gpt-4o-mini",
      effective_from: "2024-07-18T00:00:00Z",
      prompt_micros_per_mtok: 150_000,
      completion_micros_per_mtok: 600_000,
      cached_prompt_micros_per_mtok: 75_000,
    },
    {
      price_id: "claude-sonnet-2024-06",
      model: "claude-sonnet",
      effective_from: "2024-06-20T00:00:00Z",
      prompt_micros_per_mtok: 3_000_000,
      completion_micros_per_mtok: 15_000_000,
      cached_prompt_micros_per_mtok: 300_000,
    },
  ],
};
