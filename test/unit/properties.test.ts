import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  applyBatch,
  type BillingState,
  defaultBillingConfig,
  emptyState,
  paidTokens,
} from "../../pipeline/core/index.ts";
import type { InputRecord, Output } from "../../schemas/index.ts";
import { cloneState } from "../support/clone-state.ts";
import { at, credit, ofKind, PLATFORM_IDS, session, usage } from "./builders.ts";

/** Random record sequences over three accounts, event times within two days (inside the horizon). */
const accountIds = fc.constantFrom(
  {
    level: "app_usage",
    enterprise_id: "app_1",
    mozaiks_user_id: "creator_1",
    platform_user_id: "end_1",
  } as const,
  {
    level: "app_usage",
    enterprise_id: "app_2",
    mozaiks_user_id: "creator_1",
    platform_user_id: "end_1",
  } as const,
  PLATFORM_IDS,
);
const minute = fc.integer({ min: 0, max: 2 * 24 * 60 });
const chatId = fc.constantFrom("chat-1", "chat-2", "chat-3");

const usageSpec = fc.record({
  ids: accountIds,
  minute,
  chat_id: chatId,
  model: fc.constantFrom("default", "gpt-4o", "gpt-4o-mini", "claude-sonnet"),
  prompt: fc.integer({ min: 0, max: 6_000 }),
  completion: fc.integer({ min: 0, max: 6_000 }),
  second: fc.option(fc.integer({ min: 0, max: 3_000 }), { nil: undefined }),
});
const creditSpec = fc.record({
  ids: accountIds,
  minute,
  kind: fc.constantFrom("top_up", "grant", "budget_set"),
  tokens: fc.integer({ min: 0, max: 20_000 }),
});
const sessionSpec = fc.record({
  ids: accountIds,
  minute,
  chat_id: chatId,
  event: fc.constantFrom("start", "pause", "resume", "finalize"),
});

const recordSpec = fc.oneof(
  { weight: 6, arbitrary: usageSpec.map((spec) => ({ type: "usage" as const, spec })) },
  { weight: 2, arbitrary: creditSpec.map((spec) => ({ type: "credit" as const, spec })) },
  { weight: 2, arbitrary: sessionSpec.map((spec) => ({ type: "session" as const, spec })) },
);

function build(specs: readonly RecordSpec[]): InputRecord[] {
  return specs.map((item, index) => {
    const record_id = `r-${index}`;
    if (item.type === "usage") {
      const spec = item.spec;
      const agents: Record<string, { prompt_tokens: number; completion_tokens: number }> = {
        A: { prompt_tokens: spec.prompt, completion_tokens: spec.completion },
      };
      if (spec.second !== undefined) agents.B = { prompt_tokens: spec.second, completion_tokens: 1 };
      return usage({
        ...spec.ids,
        record_id,
        chat_id: spec.chat_id,
        model: spec.model,
        agent_usage: agents,
        occurred_at: at(spec.minute),
      });
    }
    if (item.type === "credit") {
      const spec = item.spec;
      return credit({
        ...spec.ids,
        record_id,
        kind: spec.kind,
        tokens: spec.tokens,
        occurred_at: at(spec.minute),
      });
    }
    const spec = item.spec;
    return session({
      ...spec.ids,
      record_id,
      chat_id: spec.chat_id,
      event: spec.event,
      occurred_at: at(spec.minute),
    });
  });
}
type RecordSpec = typeof recordSpec extends fc.Arbitrary<infer T> ? T : never;

const records = fc.array(recordSpec, { minLength: 1, maxLength: 40 }).map(build);

function apply(state: BillingState, list: readonly InputRecord[]) {
  return applyBatch(
    state,
    list.map((record) => ({ record })),
    defaultBillingConfig,
  );
}

const effective = (outputs: readonly Output[]) =>
  outputs.filter((output) => output.kind !== "duplicate_ignored");
const RUNS = { numRuns: 150 };

describe("properties over random record sequences", () => {
  test("For every usage outcome: billed = creator share + platform fee, and billed <= cost", () => {
    fc.assert(
      fc.property(records, (list) => {
        for (const outcome of ofKind(apply(emptyState(), list).outputs, "usage_outcome")) {
          assert.equal(outcome.creator_share_micros + outcome.platform_fee_micros, outcome.billed_micros);
          assert.ok(outcome.billed_micros <= outcome.cost_micros);
          assert.ok(outcome.creator_share_micros >= 0n && outcome.platform_fee_micros >= 0n);
          // Grants are drawn first and are free: every token comes from exactly one of the three.
          assert.equal(
            outcome.trial_tokens_used + outcome.paid_tokens_used + (outcome.grant_tokens_used ?? 0),
            outcome.tokens_used,
          );
        }
      }),
      RUNS,
    );
  });
  test("For every account: paid balance = credits - paid debits, trial used = trial debits, billed = sum billed", () => {
    fc.assert(
      fc.property(records, (list) => {
        const { state, outputs } = apply(emptyState(), list);
        for (const account of Object.values(state.accounts)) {
          const mine = outputs.filter((output) => output.account_key === account.account_key);
          const credited = ofKind(mine, "credit_applied")
            .filter((c) => c.credit_kind === "top_up")
            .reduce((sum, c) => sum + c.tokens, 0);
          const outcomes = ofKind(mine, "usage_outcome");
          const paidUsed = outcomes.reduce((sum, o) => sum + o.paid_tokens_used, 0);
          const trialUsed = outcomes.reduce((sum, o) => sum + o.trial_tokens_used, 0);
          const billed = outcomes.reduce((sum, o) => sum + o.billed_micros, 0n);
          assert.equal(paidTokens(account), credited - paidUsed);
          assert.equal(account.trial_used_tokens, trialUsed);
          assert.equal(account.billed_micros, billed);
          assert.equal(account.creator_share_micros + account.platform_fee_micros, account.billed_micros);
        }
      }),
      RUNS,
    );
  });
  test("Applying a sequence twice gives the same state", () => {
    fc.assert(
      fc.property(records, (list) => {
        const once = apply(emptyState(), list);
        assert.deepEqual(apply(once.state, list).state, once.state);
      }),
      RUNS,
    );
  });
  test("Duplicates inserted anywhere after their original change nothing but add duplicate_ignored", () => {
    const withDuplicates = records.chain((list) =>
      fc.array(fc.tuple(fc.nat(), fc.nat()), { maxLength: 15 }).map((picks) => ({ list, picks })),
    );
    fc.assert(
      fc.property(withDuplicates, ({ list, picks }) => {
        const noisy = [...list];
        for (const [which, where] of picks) {
          const original = which % list.length;
          const position = noisy.indexOf(list[original]!);
          const insertAt = position + 1 + (where % (noisy.length - position));
          noisy.splice(insertAt, 0, structuredClone(list[original]!));
        }
        const clean = apply(emptyState(), list);
        const dirty = apply(emptyState(), noisy);
        assert.deepEqual(dirty.state, clean.state);
        assert.deepEqual(effective(dirty.outputs), clean.outputs);
      }),
      RUNS,
    );
  });
  test("Cutting a sequence into batches at any points gives the same state and outputs as one batch", () => {
    const withCuts = records.chain((list) =>
      fc.array(fc.integer({ min: 0, max: list.length }), { maxLength: 6 }).map((cuts) => ({ list, cuts })),
    );
    fc.assert(
      fc.property(withCuts, ({ list, cuts }) => {
        const bounds = [0, ...[...new Set(cuts)].sort((a, b) => a - b), list.length];
        let state = emptyState();
        const outputs: Output[] = [];
        for (let i = 0; i + 1 < bounds.length; i++) {
          const result = apply(state, list.slice(bounds[i], bounds[i + 1]));
          state = result.state;
          outputs.push(...result.outputs);
        }
        const whole = apply(emptyState(), list);
        assert.deepEqual(state, whole.state);
        assert.deepEqual(outputs, whole.outputs);
      }),
      RUNS,
    );
  });
  test("Same input, same output: deterministic and independent of a stored-and-reloaded state", () => {
    fc.assert(
      fc.property(records, fc.nat(), (list, cut) => {
        const split = cut % list.length;
        const first = apply(emptyState(), list.slice(0, split));
        const reloaded = cloneState(first.state);
        assert.deepEqual(apply(reloaded, list.slice(split)), apply(first.state, list.slice(split)));
        assert.deepEqual(apply(emptyState(), list), apply(emptyState(), list));
      }),
      RUNS,
    );
  });
});
