import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { canContinue } from "../../pipeline/core/account.ts";
import { usedBasisPoints } from "../../pipeline/core/budget.ts";
import { applyBatchInPlace, defaultBillingConfig, emptyState } from "../../pipeline/core/index.ts";
import {
  creditRecordSchema,
  refundRecordSchema,
  type TopicRecord,
  tickRecordSchema,
  voidRecordSchema,
} from "../../schemas/index.ts";
import { applyInCuts } from "./apply-in-cuts.ts";
import { APP_IDS, at, credit, PLATFORM_IDS, usage } from "./builders.ts";

/**
 * Token classes, dated grants, voids, refunds and ticks together, on three accounts: conservation for
 * every record and in total, tokens drawn never above what grants hold, and the same state and outputs
 * whatever the batch cuts, and on replay.
 */
const ACCOUNTS = [APP_IDS, { ...APP_IDS, platform_user_id: "end_2" }, PLATFORM_IDS] as const;

const step = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("usage" as const),
      account: fc.nat(2),
      model: fc.constantFrom("default", "gpt-4o", "gpt-4o-mini", "claude-sonnet"),
      prompt: fc.nat(4_000),
      completion: fc.nat(4_000),
      cached: fc.option(fc.nat(4_000), { nil: undefined }),
      reasoning: fc.option(fc.nat(2_000), { nil: undefined }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("grant" as const),
      account: fc.nat(2),
      tokens: fc.nat(5_000),
      priority: fc.nat(2),
      start: fc.nat(30),
      life: fc.option(fc.integer({ min: 1, max: 120 }), { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant("top_up" as const), account: fc.nat(2), tokens: fc.nat(8_000) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("void" as const), account: fc.nat(2), target: fc.nat(60) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("refund" as const),
      account: fc.nat(2),
      target: fc.nat(60),
      amount: fc.integer({ min: 1, max: 100_000 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("tick" as const) }) },
);
type Step = typeof step extends fc.Arbitrary<infer T> ? T : never;

function streamOf(steps: readonly Step[]): TopicRecord[] {
  return steps.map((s, i): TopicRecord => {
    const occurred_at = at(i * 3);
    if (s.kind === "tick") {
      return tickRecordSchema.parse({ type: "tick", record_id: `t-${i}`, partition: 0, occurred_at });
    }
    const ids = ACCOUNTS[s.account]!;
    if (s.kind === "usage") {
      return usage({
        record_id: `u-${i}`,
        ...ids,
        chat_id: `chat-${i % 2}`,
        model: s.model,
        agent_usage: {
          A: {
            prompt_tokens: s.prompt,
            completion_tokens: s.completion,
            ...(s.cached === undefined ? {} : { cached_prompt_tokens: s.cached }),
            ...(s.reasoning === undefined ? {} : { reasoning_tokens: s.reasoning }),
          },
        },
        occurred_at,
      });
    }
    if (s.kind === "top_up") return credit({ record_id: `c-${i}`, ...ids, tokens: s.tokens, occurred_at });
    if (s.kind === "grant") {
      return creditRecordSchema.parse({
        type: "credit",
        record_id: `g-${i}`,
        kind: "grant",
        ...ids,
        tokens: s.tokens,
        priority: s.priority,
        effective_at: at(i * 3 + s.start),
        ...(s.life === null ? {} : { expires_at: at(i * 3 + s.start + s.life) }),
        occurred_at,
      });
    }
    const common = { ...ids, target_record_id: `u-${s.target}`, occurred_at };
    return s.kind === "void"
      ? voidRecordSchema.parse({ type: "void", record_id: `v-${i}`, ...common })
      : refundRecordSchema.parse({
          type: "refund",
          record_id: `r-${i}`,
          ...common,
          amount_micros: String(s.amount),
        });
  });
}

function apply(records: readonly TopicRecord[], cuts: readonly number[] = [], inPlace = false) {
  return applyInCuts(records, cuts, defaultBillingConfig, inPlace);
}

describe("credits as finance needs them: properties over every new rule together", () => {
  test("Property: conservation per record and in total; grants never overdrawn; batch cuts and replays agree", () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 60 }),
        fc.array(fc.nat(60), { maxLength: 4 }),
        (steps, cuts) => {
          const records = streamOf(steps);
          const whole = apply(records);
          const left = new Map<string, bigint>();
          for (const o of whole.outputs) {
            if (o.kind === "usage_outcome") {
              assert.equal(o.billed_micros, o.creator_share_micros + o.platform_fee_micros);
              assert.equal(
                o.tokens_used,
                o.trial_tokens_used + o.paid_tokens_used + (o.grant_tokens_used ?? 0),
              );
              left.set(o.record_id, o.billed_micros);
            } else if (o.kind === "adjustment") {
              assert.equal(o.billed_micros, o.creator_share_micros + o.platform_fee_micros);
              const rest = left.get(o.target_record_id)! + o.billed_micros;
              assert.ok(rest >= 0n);
              left.set(o.target_record_id, rest);
            } else if (o.kind === "budget_event" && o.event === "grant_expired") {
              assert.ok(o.forfeited_tokens >= 0 && o.forfeited_tokens <= o.granted_tokens);
            }
          }
          for (const account of Object.values(whole.state.accounts)) {
            const c = account.corrections;
            const billed = account.billed_micros - (c?.reversed_billed_micros ?? 0n);
            const creator = account.creator_share_micros - (c?.reversed_creator_share_micros ?? 0n);
            const platform = account.platform_fee_micros - (c?.reversed_platform_fee_micros ?? 0n);
            assert.equal(billed, creator + platform);
            assert.ok(creator >= 0n && platform >= 0n);
            for (const g of Object.values(account.grants ?? {})) assert.ok(g.used >= 0 && g.used <= g.tokens);
            assert.ok(account.trial_used_tokens >= 0 && account.paid_used_tokens >= 0);
          }
          const cut = apply(records, cuts);
          assert.deepEqual(cut.state, whole.state);
          assert.deepEqual(cut.outputs, whole.outputs);
          assert.deepEqual(apply(records), whole);
          // The audit's in-place variant gives the same outputs and state, cut anywhere
          const inPlace = apply(records, cuts, true);
          assert.deepEqual(inPlace.state, whole.state);
          assert.deepEqual(inPlace.outputs, whole.outputs);
        },
      ),
      { numRuns: 150 },
    );
  });

  test("Property: after every record a raised threshold is one usage is at or over, and paused chats are resumable exactly when the account can continue", () => {
    // Budgets of 1,000 tokens, so usage crosses the thresholds and grants, top-ups and voids bring it
    // back under them within a few records.
    const budgets = ACCOUNTS.map((ids, i) =>
      credit({ record_id: `b-${i}`, ...ids, kind: "budget_set", tokens: 1_000, occurred_at: at(0) }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 60 }), (steps) => {
        const records = [...budgets, ...streamOf(steps)];
        // After every record: a raised threshold is one usage is at or over (whatever brought usage
        // back under it, a credit, a grant that starts, a void or a new period, re-armed it, so the
        // next crossing is raised), and a paused chat is resumable exactly when the account can continue.
        const stepwise = emptyState();
        for (const record of records) {
          const outputs = applyBatchInPlace(stepwise, [{ record }], defaultBillingConfig);
          // A chat a record calls resumable is resumable when the record is done, or running again (a
          // usage record on it resumed it).
          for (const output of outputs)
            if (output.kind === "budget_event" && output.event === "resumable") {
              const chat = Object.values(stepwise.accounts).find(
                (account) => account.account_key === output.account_key,
              )?.chats[output.chat_id];
              if (chat?.paused) assert.equal(chat.can_resume, true, `${record.record_id} ${output.chat_id}`);
            }
          for (const account of Object.values(stepwise.accounts)) {
            const usedBp = usedBasisPoints(account);
            for (const threshold of account.thresholds_raised_bp)
              assert.ok(threshold <= usedBp, `${record.record_id}: ${threshold} raised at ${usedBp}`);
            for (const chat of Object.values(account.chats))
              if (chat.paused) assert.equal(chat.can_resume, canContinue(account), record.record_id);
          }
        }
      }),
      { numRuns: 300 },
    );
  });
});
