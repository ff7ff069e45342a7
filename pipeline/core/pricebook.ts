import { epochMs, type PriceBook, type PriceEntry, type UsageRecord } from "../../schemas/index.ts";
import type { BillingConfig } from "./config.ts";
import { divideRoundHalfUp } from "./rounding.ts";

const TOKENS_PER_PRICE_UNIT = 1_000_000n;

/** The entry of `model` in force at `atMs`: the latest `effective_from` not after it. */
export function findPrice(book: PriceBook, model: string, atMs: number): PriceEntry | undefined {
  let best: PriceEntry | undefined;
  let bestFrom = Number.NEGATIVE_INFINITY;
  for (const entry of book.entries) {
    if (entry.model !== model) continue;
    const from = epochMs(entry.effective_from);
    if (from <= atMs && from > bestFrom) {
      best = entry;
      bestFrom = from;
    }
  }
  return best;
}

export type AgentPrice = {
  model: string;
  price_id: string;
  price_fallback: boolean;
  prompt_tokens: number;
  completion_tokens: number;
  response_time_ms: number | null;
  message_count: number | null;
};

export type PricedUsage =
  | { ok: true; cost_micros: bigint; agents: Record<string, AgentPrice>; price_ids: string[] }
  | { ok: false; reason: string };

/**
 * Cost of a usage record: the exact sum over agents of tokens x price per million, divided by one
 * million once and rounded half up once per record (so splitting a record into agents never changes
 * its cost by rounding). An unpriced model is dead-lettered or priced as the default model, per config.
 */
export function priceUsage(record: UsageRecord, config: BillingConfig): PricedUsage {
  const atMs = epochMs(record.occurred_at);
  const agents: Record<string, AgentPrice> = {};
  const priceIds = new Set<string>();
  let numerator = 0n;
  for (const [name, usage] of Object.entries(record.agent_usage)) {
    const model = usage.model ?? record.model ?? config.default_model;
    let entry = findPrice(config.price_book, model, atMs);
    let fallback = false;
    if (entry === undefined && config.unknown_model === "default_price") {
      entry = findPrice(config.price_book, config.default_model, atMs);
      fallback = true;
    }
    if (entry === undefined) {
      const how = fallback ? ` and the default model ${config.default_model} has no price either` : "";
      return {
        ok: false,
        reason: `agent ${name}: model ${model} has no price at ${record.occurred_at}${how}`,
      };
    }
    numerator +=
      BigInt(usage.prompt_tokens) * BigInt(entry.prompt_micros_per_mtok) +
      BigInt(usage.completion_tokens) * BigInt(entry.completion_micros_per_mtok);
    priceIds.add(entry.price_id);
    agents[name] = {
      model,
      price_id: entry.price_id,
      price_fallback: fallback,
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      response_time_ms: usage.response_time_ms ?? null,
      message_count: usage.message_count ?? null,
    };
  }
  return {
    ok: true,
    cost_micros: divideRoundHalfUp(numerator, TOKENS_PER_PRICE_UNIT),
    agents,
    price_ids: [...priceIds].sort(),
  };
}
