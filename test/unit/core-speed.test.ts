import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { cloneAccount } from "../../pipeline/core/account.ts";
import { usedBasisPoints } from "../../pipeline/core/budget.ts";
import {
  type AccountState,
  applyBatch,
  type ChatState,
  defaultBillingConfig,
  emptyState,
  MAX_TOKEN_COUNTER,
  priceUsage,
  usageRangeReason,
} from "../../pipeline/core/index.ts";
import { copyMap, emptyMap } from "../../pipeline/core/own.ts";
import type { AgentPrice } from "../../pipeline/core/pricebook.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { bigintReplacer, decodeRecord, epochMs, INT64_MAX } from "../../schemas/index.ts";
import { cloneState } from "../support/clone-state.ts";
import { config, usage } from "./builders.ts";

/**
 * The shortcuts of the core's fast paths (docs/core-speed.md) give exactly what the plain
 * exact computation gives: number arithmetic only where it is exact, bigint otherwise; copies that are
 * equal to a deep copy and independent of the original.
 */

function workloadState() {
  const records = [
    ...generateWorkload({
      records: 3_000,
      apps: 3,
      usersPerApp: 10,
      seed: 3,
      startAt: "2026-01-05T09:00:00Z",
    }),
  ].map((json, seq) => {
    const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 1 << 20 });
    assert.ok(decoded.ok);
    return { record: decoded.record, seq };
  });
  return applyBatch(emptyState(), records, defaultBillingConfig).state;
}

describe("cloneAccount", () => {
  test("equals a deep copy, serializes the same, and shares nothing the rules write", () => {
    const state = workloadState();
    const accounts = Object.values(state.accounts);
    assert.ok(accounts.length > 20);
    for (const account of accounts) {
      const copy = cloneAccount(account);
      assert.deepStrictEqual(copy, cloneState(account));
      assert.equal(JSON.stringify(copy, bigintReplacer), JSON.stringify(account, bigintReplacer));
      // The id maps keep their order too (deepStrictEqual compares Maps as sets of entries).
      assert.deepEqual([...copy.dedupe.seen], [...account.dedupe.seen]);
      assert.deepEqual([...(copy.corrections?.usage ?? [])], [...(account.corrections?.usage ?? [])]);
      const before = cloneState(account);
      copy.tokens_used += 1;
      copy.thresholds_raised_bp.push(1);
      copy.dedupe.seen.set("new-id", 1);
      copy.corrections?.usage.delete([...copy.corrections.usage.keys()][0] ?? "");
      copy.dedupe.count += 1;
      for (const chat of Object.values(copy.chats)) {
        chat.total_tokens += 1;
        chat.paused = !chat.paused;
        for (const totals of Object.values(chat.agents)) totals.prompt_tokens += 1;
        chat.agents.NewAgent = {
          prompt_tokens: 1,
          completion_tokens: 0,
          response_time_ms: 0,
          message_count: 0,
        };
      }
      copy.chats["new-chat"] = Object.values(account.chats)[0] ?? ({} as ChatState);
      assert.deepStrictEqual(account, before);
    }
  });

  test("keeps fields it does not know (a stored document's extra fields) and their values", () => {
    const [account] = Object.values(workloadState().accounts) as AccountState[];
    const stored = { ...account!, wm_offset: 7, extra: { nested: [1, 2] } } as AccountState;
    assert.deepStrictEqual(cloneAccount(stored), cloneState(stored));
  });
});

describe("state maps", () => {
  test("emptyMap and copyMap are plain objects: same keys, same order, Object.prototype", () => {
    const map = emptyMap<number>();
    for (const key of ["b", "a", "10", "2", "x:y"]) map[key] = key.length;
    assert.equal(Object.getPrototypeOf(map), Object.prototype);
    assert.deepStrictEqual(map, { b: 1, a: 1, "10": 2, "2": 1, "x:y": 3 });
    assert.equal(JSON.stringify(copyMap(map)), JSON.stringify(map));
    assert.deepStrictEqual(Object.keys(copyMap(map)), Object.keys(map));
    assert.equal(Object.hasOwn(map, "\u0000"), false);
  });
});

/** used / capacity in basis points exactly as before the fast path (bigint). */
function referenceBasisPoints(
  account: Pick<
    AccountState,
    "trial_used_tokens" | "paid_used_tokens" | "allowance_tokens" | "credited_tokens"
  >,
): number {
  const used = BigInt(account.trial_used_tokens) + BigInt(account.paid_used_tokens);
  const capacity = BigInt(account.allowance_tokens) + BigInt(account.credited_tokens);
  if (capacity === 0n) return used === 0n ? 0 : Number.MAX_SAFE_INTEGER;
  return Number((used * 10_000n) / capacity);
}

const tokenCounter = fc.oneof(
  fc.integer({ min: 0, max: 1_000_000 }),
  fc.integer({ min: 0, max: MAX_TOKEN_COUNTER }),
  fc.integer({ min: 2 ** 48 - 1_000, max: 2 ** 48 + 1_000 }),
  fc.integer({ min: 2 ** 52 - 1_000, max: 2 ** 52 + 1_000 }),
  fc.constantFrom(0, 1, 3, 7, 9_999, 10_000, 10_001, MAX_TOKEN_COUNTER),
);

describe("usedBasisPoints", () => {
  test("equals the exact bigint quotient for any counters", () => {
    fc.assert(
      fc.property(
        tokenCounter,
        tokenCounter,
        tokenCounter,
        tokenCounter,
        (trial, paid, allowance, credited) => {
          const account = {
            trial_used_tokens: trial,
            paid_used_tokens: paid,
            allowance_tokens: allowance,
            credited_tokens: credited,
          } as AccountState;
          assert.equal(usedBasisPoints(account), referenceBasisPoints(account));
        },
      ),
      { numRuns: 20_000 },
    );
  });
});

describe("priceUsage", () => {
  test("the cost is the exact bigint sum divided once, half up, however large the terms", () => {
    const big = fc.oneof(
      fc.integer({ min: 0, max: 10_000 }),
      fc.integer({ min: 0, max: 1_000_000_000_000 }),
      fc.constantFrom(0, 1, 999_999, 1_000_000, 1_000_000_000_000),
    );
    fc.assert(
      fc.property(
        fc.array(fc.tuple(big, big), { minLength: 1, maxLength: 5 }),
        big,
        big,
        (agents, promptPrice, completionPrice) => {
          const cfg = config({
            price_book: {
              entries: [
                {
                  price_id: "p",
                  model: "default",
                  effective_from: "2024-01-01T00:00:00Z",
                  prompt_micros_per_mtok: promptPrice,
                  completion_micros_per_mtok: completionPrice,
                },
              ],
            },
          });
          const agentUsage = Object.fromEntries(
            agents.map(([prompt, completion], i) => [
              `A${i}`,
              { prompt_tokens: prompt, completion_tokens: completion },
            ]),
          );
          const priced = priceUsage(usage({ agent_usage: agentUsage }), cfg);
          assert.ok(priced.ok);
          let numerator = 0n;
          for (const [prompt, completion] of agents)
            numerator += BigInt(prompt) * BigInt(promptPrice) + BigInt(completion) * BigInt(completionPrice);
          assert.equal(priced.cost_micros, (2n * numerator + 1_000_000n) / 2_000_000n);
        },
      ),
      { numRuns: 5_000 },
    );
  });
});

/** usageRangeReason as it was before its fast path: every check built, the first one over reported. */
function referenceRangeReason(
  account: AccountState,
  chat: ChatState | undefined,
  agents: Readonly<Record<string, AgentPrice>>,
  delta: Parameters<typeof usageRangeReason>[3],
): string | undefined {
  type Check = { counter: string; value: bigint; limit: bigint };
  const tokens = (counter: string, current: number, add: number): Check => ({
    counter,
    value: BigInt(current) + BigInt(add),
    limit: BigInt(MAX_TOKEN_COUNTER),
  });
  const micros = (counter: string, current: bigint, add: bigint): Check => ({
    counter,
    value: current + add,
    limit: INT64_MAX,
  });
  const checks: Check[] = [
    tokens("tokens_used", account.tokens_used, delta.tokens_used),
    tokens("trial_used_tokens", account.trial_used_tokens, delta.trial_tokens),
    tokens("paid_used_tokens", account.paid_used_tokens, delta.paid_tokens),
    micros("cost_micros", account.cost_micros, delta.cost_micros),
    micros("billed_micros", account.billed_micros, delta.billed_micros),
    micros("creator_share_micros", account.creator_share_micros, delta.creator_share_micros),
    micros("platform_fee_micros", account.platform_fee_micros, delta.platform_fee_micros),
    tokens("chat total_tokens", chat?.total_tokens ?? 0, delta.tokens_used),
    micros("chat cost_micros", chat?.cost_micros ?? 0n, delta.cost_micros),
    micros("chat billed_micros", chat?.billed_micros ?? 0n, delta.billed_micros),
  ];
  for (const [name, agent] of Object.entries(agents)) {
    const totals =
      chat === undefined ? undefined : Object.hasOwn(chat.agents, name) ? chat.agents[name] : undefined;
    checks.push(
      tokens(`chat agent ${name} prompt_tokens`, totals?.prompt_tokens ?? 0, agent.prompt_tokens),
      tokens(`chat agent ${name} completion_tokens`, totals?.completion_tokens ?? 0, agent.completion_tokens),
      tokens(`chat agent ${name} message_count`, totals?.message_count ?? 0, agent.message_count ?? 0),
    );
    if ((totals?.response_time_ms ?? 0) + (agent.response_time_ms ?? 0) > MAX_TOKEN_COUNTER) {
      return `chat agent ${name} response_time_ms would pass ${MAX_TOKEN_COUNTER}`;
    }
  }
  for (const check of checks) {
    if (check.value > check.limit) {
      const what =
        check.limit === INT64_MAX ? "int64, what the stores hold" : "2^53-1, exact in a token counter";
      return `${check.counter} would be ${check.value}, past ${check.limit} (${what})`;
    }
  }
  return undefined;
}

describe("usageRangeReason", () => {
  test("gives the same answer and the same reason as the full check, near every bound", () => {
    const near = (max: number) =>
      fc.oneof(
        fc.integer({ min: 0, max: 1_000 }),
        fc.integer({ min: max - 2_000, max }),
        fc.integer({ min: 0, max }),
      );
    const tokensNear = near(MAX_TOKEN_COUNTER);
    const micros = fc.oneof(
      fc.bigInt({ min: 0n, max: 1_000n }),
      fc.bigInt({ min: INT64_MAX - 2_000n, max: INT64_MAX }),
      fc.bigInt({ min: 0n, max: INT64_MAX }),
    );
    const small = fc.integer({ min: 0, max: 2_000 });
    fc.assert(
      fc.property(
        fc.record({
          tokens_used: tokensNear,
          trial: tokensNear,
          paid: tokensNear,
          cost: micros,
          billed: micros,
          creator: micros,
          fee: micros,
          chat: fc.option(
            fc.record({
              total: tokensNear,
              cost: micros,
              billed: micros,
              prompt: tokensNear,
              messages: tokensNear,
              time: tokensNear,
            }),
            { nil: undefined },
          ),
          add: small,
          addMicros: fc.bigInt({ min: 0n, max: 2_000n }),
          time: fc.option(small, { nil: null }),
        }),
        (v) => {
          const account = {
            tokens_used: v.tokens_used,
            trial_used_tokens: v.trial,
            paid_used_tokens: v.paid,
            cost_micros: v.cost,
            billed_micros: v.billed,
            creator_share_micros: v.creator,
            platform_fee_micros: v.fee,
          } as AccountState;
          const chat =
            v.chat === undefined
              ? undefined
              : ({
                  total_tokens: v.chat.total,
                  cost_micros: v.chat.cost,
                  billed_micros: v.chat.billed,
                  agents: {
                    A: {
                      prompt_tokens: v.chat.prompt,
                      completion_tokens: 0,
                      message_count: v.chat.messages,
                      response_time_ms: v.chat.time,
                    },
                  },
                } as unknown as ChatState);
          const agents: Record<string, AgentPrice> = {
            A: {
              model: "m",
              price_id: "p",
              price_fallback: false,
              prompt_tokens: v.add,
              completion_tokens: v.add,
              response_time_ms: v.time,
              message_count: v.time === null ? null : 1,
            },
          };
          const delta = {
            tokens_used: 2 * v.add,
            trial_tokens: v.add,
            paid_tokens: v.add,
            cost_micros: v.addMicros,
            billed_micros: v.addMicros,
            creator_share_micros: v.addMicros,
            platform_fee_micros: v.addMicros,
          };
          assert.equal(
            usageRangeReason(account, chat, agents, delta),
            referenceRangeReason(account, chat, agents, delta),
          );
        },
      ),
      { numRuns: 20_000 },
    );
  });
});

describe("epochMs", () => {
  test("is Date.parse, before and after its cache is emptied", () => {
    const base = Date.parse("2026-01-05T09:00:00Z");
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 10_000; i++) {
        const text = new Date(base + i * 997).toISOString().replace("Z", i % 3 === 0 ? "+02:00" : "Z");
        assert.equal(epochMs(text), Date.parse(text));
      }
    }
  });
});
