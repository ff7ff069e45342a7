import { epochMs, type PriceBook, type PriceEntry, type UsageRecord } from "../../schemas/index.ts";
import type { BillingConfig } from "./billing-config.ts";
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
  /** The token classes, present only when the record reported them (so records without them price and print as before). */
  cached_prompt_tokens?: number;
  reasoning_tokens?: number;
  audio_tokens?: number;
  response_time_ms: number | null;
  message_count: number | null;
};

export type PricedUsage =
  | { ok: true; cost_micros: bigint; agents: Record<string, AgentPrice>; price_ids: string[] }
  | { ok: false; code: "UNKNOWN_MODEL" | "UNPRICED_TOKEN_CLASS"; reason: string };

/** Every token of one agent's usage: prompt, completion and the token classes (disjoint counts). */
export function agentTokenCount(agent: {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly cached_prompt_tokens?: number | undefined;
  readonly reasoning_tokens?: number | undefined;
  readonly audio_tokens?: number | undefined;
}): number {
  return (
    agent.prompt_tokens +
    agent.completion_tokens +
    (agent.cached_prompt_tokens ?? 0) +
    (agent.reasoning_tokens ?? 0) +
    (agent.audio_tokens ?? 0)
  );
}

/**
 * The price of each token class under an entry: its own price, else the documented fallback (cached
 * prompt -> prompt, reasoning -> completion). Audio has none: undefined when the entry does not price it.
 */
export function classPrices(entry: PriceEntry): {
  cached_prompt: number;
  reasoning: number;
  audio: number | undefined;
} {
  return {
    cached_prompt: entry.cached_prompt_micros_per_mtok ?? entry.prompt_micros_per_mtok,
    reasoning: entry.reasoning_micros_per_mtok ?? entry.completion_micros_per_mtok,
    audio: entry.audio_micros_per_mtok,
  };
}

/**
 * An exact sum of tokens x price terms: in a JS number while every product and the sum stay safe
 * integers (a product of integers at most 2^53-1 is computed exactly), in bigint from the first term
 * that would not. The total is the same exact integer either way; most records never touch bigint.
 */
class ExactSum {
  private small = 0;
  private big = 0n;

  add(tokens: number, price: number): void {
    if (tokens === 0) return;
    const part = tokens * price;
    const sum = this.small + part;
    if (part <= Number.MAX_SAFE_INTEGER && sum <= Number.MAX_SAFE_INTEGER) this.small = sum;
    else this.big += BigInt(tokens) * BigInt(price);
  }

  total(): bigint {
    return this.big + BigInt(this.small);
  }
}

/**
 * Cost of a usage record: the exact sum over agents of tokens x price per million (per token class),
 * divided by one million once and rounded half up once per record (so splitting a record into agents
 * never changes its cost by rounding). An unpriced model is dead-lettered or priced as the default
 * model, per config; audio tokens on an entry without an audio price are dead-lettered.
 */
export function priceUsage(record: UsageRecord, config: BillingConfig): PricedUsage {
  const atMs = epochMs(record.occurred_at);
  const agents: Record<string, AgentPrice> = {};
  // The price ids of the record, each once (a record names one or two models: a short array, no Set).
  const priceIds: string[] = [];
  const numerator = new ExactSum();
  // Agents mostly share the record's model: the entry found for one model is reused for the next agent
  // of the same model (same book, same time, so the same answer).
  let lastModel: string | undefined;
  let lastEntry: PriceEntry | undefined;
  for (const name in record.agent_usage) {
    const usage = record.agent_usage[name]!;
    const model = usage.model ?? record.model ?? config.default_model;
    if (model !== lastModel) {
      lastModel = model;
      lastEntry = findPrice(config.price_book, model, atMs);
    }
    let entry = lastEntry;
    let fallback = false;
    if (entry === undefined && config.unknown_model === "default_price") {
      entry = findPrice(config.price_book, config.default_model, atMs);
      fallback = true;
    }
    if (entry === undefined) {
      const how = fallback ? ` and the default model ${config.default_model} has no price either` : "";
      return {
        ok: false,
        code: "UNKNOWN_MODEL",
        reason: `agent ${name}: model ${model} has no price at ${record.occurred_at}${how}`,
      };
    }
    numerator.add(usage.prompt_tokens, entry.prompt_micros_per_mtok);
    numerator.add(usage.completion_tokens, entry.completion_micros_per_mtok);
    const price: AgentPrice = {
      model,
      price_id: entry.price_id,
      price_fallback: fallback,
      prompt_tokens: usage.prompt_tokens,
      completion_tokens: usage.completion_tokens,
      response_time_ms: usage.response_time_ms ?? null,
      message_count: usage.message_count ?? null,
    };
    if (
      usage.cached_prompt_tokens !== undefined ||
      usage.reasoning_tokens !== undefined ||
      usage.audio_tokens !== undefined
    ) {
      const classes = classPrices(entry);
      if (usage.cached_prompt_tokens !== undefined) {
        numerator.add(usage.cached_prompt_tokens, classes.cached_prompt);
        price.cached_prompt_tokens = usage.cached_prompt_tokens;
      }
      if (usage.reasoning_tokens !== undefined) {
        numerator.add(usage.reasoning_tokens, classes.reasoning);
        price.reasoning_tokens = usage.reasoning_tokens;
      }
      if (usage.audio_tokens !== undefined) {
        if (classes.audio === undefined && usage.audio_tokens > 0) {
          return {
            ok: false,
            code: "UNPRICED_TOKEN_CLASS",
            reason: `agent ${name}: ${usage.audio_tokens} audio_tokens, and price ${entry.price_id} of model ${entry.model} has no audio price (audio_micros_per_mtok); audio has no fallback price`,
          };
        }
        numerator.add(usage.audio_tokens, classes.audio ?? 0);
        price.audio_tokens = usage.audio_tokens;
      }
    }
    if (!priceIds.includes(entry.price_id)) priceIds.push(entry.price_id);
    agents[name] = price;
  }
  return {
    ok: true,
    cost_micros: divideRoundHalfUp(numerator.total(), TOKENS_PER_PRICE_UNIT),
    agents,
    price_ids: priceIds.sort(),
  };
}
