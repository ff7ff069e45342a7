import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { authorizeRecord, signRecord } from "../../pipeline/auth/signature.ts";
import {
  type AccountState,
  applyBatch,
  type BillingConfig,
  defaultBillingConfig,
} from "../../pipeline/core/index.ts";
import {
  DEFAULT_MAX_RECORD_BYTES,
  decodeRecord,
  type InputRecord,
  refundRecordSchema,
} from "../../schemas/index.ts";
import { renderRecordsDoc } from "../../scripts/records-doc.ts";
import { applyInCuts } from "./apply-in-cuts.ts";
import {
  APP_IDS,
  accountOf,
  at,
  config,
  credit,
  ofKind,
  PLATFORM_IDS,
  refundOf,
  run,
  session,
  usage,
  voidOf,
} from "./builders.ts";

/** The worked example's end user up to its overdraft: trial 10,000, the third record half trial. */
function overdrawn(): InputRecord[] {
  return [
    session({ record_id: "a-start-1", chat_id: "chat_app_001", occurred_at: at(0) }),
    usage({
      record_id: "a-usage-2",
      chat_id: "chat_app_001",
      model: "gpt-4o-mini",
      agent_usage: { A: { prompt_tokens: 6_000, completion_tokens: 3_500 } },
      occurred_at: at(1),
    }),
    usage({
      record_id: "a-usage-3",
      chat_id: "chat_app_001",
      model: "claude-sonnet",
      agent_usage: { A: { prompt_tokens: 1_200, completion_tokens: 800 } },
      occurred_at: at(2),
    }),
  ];
}

describe("corrections: void", () => {
  test("Given a record drawn partly from the trial, When it is voided, Then the trial and paid tokens go back and billed, creator and platform are reversed exactly", () => {
    const { state, outputs } = run([...overdrawn(), voidOf("a-usage-3")]);
    const outcome = ofKind(outputs, "usage_outcome").find((o) => o.record_id === "a-usage-3")!;
    assert.deepEqual([outcome.trial_tokens_used, outcome.paid_tokens_used], [500, 1_500]);
    assert.deepEqual(
      [outcome.billed_micros, outcome.creator_share_micros, outcome.platform_fee_micros],
      [11_700n, 8_190n, 3_510n],
    );
    const [adjustment] = ofKind(outputs, "adjustment");
    assert.deepEqual(
      {
        adjustment: adjustment!.adjustment,
        target: adjustment!.target_record_id,
        trial: adjustment!.trial_tokens,
        paid: adjustment!.paid_tokens,
        cost: adjustment!.cost_micros,
        billed: adjustment!.billed_micros,
        creator: adjustment!.creator_share_micros,
        platform: adjustment!.platform_fee_micros,
      },
      {
        adjustment: "void",
        target: "a-usage-3",
        trial: -500,
        paid: -1_500,
        cost: -15_600n,
        billed: -11_700n,
        creator: -8_190n,
        platform: -3_510n,
      },
    );
    const account = accountOf(state);
    assert.equal(account.trial_used_tokens, 9_500);
    assert.equal(account.paid_used_tokens, 0);
    assert.equal(account.in_overdraft, false);
    // The past is not edited: gross figures stay, the reversal is counted beside them.
    assert.equal(account.billed_micros, 11_700n);
    assert.equal(account.corrections!.reversed_billed_micros, 11_700n);
    assert.equal(account.corrections!.reversed_creator_share_micros, 8_190n);
    // The chat paused on exhaustion may resume: 500 trial tokens are available again.
    const events = ofKind(outputs, "budget_event").filter((e) => e.record_id === "v-a-usage-3");
    assert.deepEqual(
      events.map((e) => e.event),
      ["resumable"],
    );
    assert.deepEqual(account.thresholds_raised_bp, [8_000]);
  });

  test("Given a voided record, When it is voided again under another record_id, Then CORRECTION_INVALID and nothing changes; the same record_id again is a duplicate", () => {
    const first = run([...overdrawn(), voidOf("a-usage-3")]);
    const again = applyBatch(
      first.state,
      [{ record: voidOf("a-usage-3", { record_id: "v-2" }) }, { record: voidOf("a-usage-3") }],
      defaultBillingConfig,
    );
    assert.deepEqual(
      again.outputs.map((o) => (o.kind === "rejected" ? o.code : o.kind)),
      ["CORRECTION_INVALID", "duplicate_ignored"],
    );
    assert.deepEqual(again.state, first.state);
  });

  test("Given a void past the correction window, Then it is rejected CORRECTION_WINDOW_PASSED with the times, and the account is unchanged", () => {
    const cfg = config({ corrections: { window_seconds: 3_600 } });
    const before = run(overdrawn(), cfg);
    const late = applyBatch(
      before.state,
      [{ record: voidOf("a-usage-3", { occurred_at: at(2 + 60) }) }],
      cfg,
    );
    const [rejected] = ofKind(late.outputs, "rejected");
    assert.equal(rejected?.code, "CORRECTION_WINDOW_PASSED");
    assert.match(rejected!.reason, /a-usage-3.*3600s/);
    assert.deepEqual(late.state, before.state);
    // One minute less is inside it.
    const inTime = applyBatch(before.state, [{ record: voidOf("a-usage-3", { occurred_at: at(61) }) }], cfg);
    assert.equal(ofKind(inTime.outputs, "adjustment").length, 1);
  });

  test("Given a void naming no usage record of the account, Then CORRECTION_TARGET_UNKNOWN; as an account's first record it creates no account", () => {
    const { state, outputs } = run([voidOf("nope")]);
    assert.equal(ofKind(outputs, "rejected")[0]?.code, "CORRECTION_TARGET_UNKNOWN");
    assert.deepEqual(state.accounts, {});
    const credited = run([credit({ record_id: "c-1" }), voidOf("c-1")]);
    assert.equal(ofKind(credited.outputs, "rejected")[0]?.code, "CORRECTION_TARGET_UNKNOWN");
  });

  test("Given a platform account, When a usage of another app is voided naming the wrong app, Then CORRECTION_INVALID; naming its app, all of it is platform fee", () => {
    const platformUsage = usage({
      record_id: "p-1",
      ...PLATFORM_IDS,
      enterprise_id: "app_9",
      occurred_at: at(0),
    });
    const records: InputRecord[] = [
      credit({ record_id: "p-budget", ...PLATFORM_IDS, kind: "budget_set", tokens: 0, occurred_at: at(0) }),
      platformUsage,
    ];
    const wrong = run([...records, voidOf("p-1", { ...PLATFORM_IDS, enterprise_id: "app_456" })]);
    assert.equal(ofKind(wrong.outputs, "rejected")[0]?.code, "CORRECTION_INVALID");
    const right = run([...records, voidOf("p-1", { ...PLATFORM_IDS, enterprise_id: "app_9" })]);
    const [adjustment] = ofKind(right.outputs, "adjustment");
    assert.equal(adjustment?.billing_target, "mozaiks_user");
    assert.equal(adjustment?.creator_share_micros, 0n);
    assert.equal(adjustment?.platform_fee_micros, adjustment?.billed_micros);
    assert.equal(adjustment?.billed_micros, -6_000n);
  });

  test("Given corrections off (window 0), Then usage leaves no memo and every correction is refused", () => {
    const cfg = config({ corrections: { window_seconds: 0 } });
    const { state, outputs } = run([...overdrawn(), voidOf("a-usage-3")], cfg);
    assert.equal(accountOf(state).corrections, undefined);
    assert.equal(ofKind(outputs, "rejected")[0]?.code, "CORRECTION_WINDOW_PASSED");
  });

  test("Given more usage records than max_remembered, Then the oldest are forgotten first and the memo stays bounded", () => {
    const cfg = config({ corrections: { max_remembered: 10 } });
    const records = Array.from({ length: 30 }, (_, i) =>
      usage({
        record_id: `u-${i}`,
        occurred_at: at(i),
        ...{ agent_usage: { A: { prompt_tokens: 1, completion_tokens: 0 } } },
      }),
    );
    const { state } = run([...records, voidOf("u-0"), voidOf("u-29")], cfg);
    const account = accountOf(state);
    assert.ok(account.corrections!.count <= 10);
    assert.equal(account.corrections!.usage.size, account.corrections!.count);
    assert.equal(account.corrections!.voided_tokens, 1);
  });
});

describe("corrections: refund", () => {
  const paidRecord = [
    credit({ record_id: "budget", kind: "budget_set", tokens: 0, occurred_at: at(0) }),
    credit({ record_id: "top", tokens: 100_000, occurred_at: at(0) }),
    usage({
      record_id: "u-1",
      model: "gpt-4o",
      agent_usage: { A: { prompt_tokens: 333, completion_tokens: 667 } },
      occurred_at: at(1),
    }),
  ];

  test("Given partial refunds adding up to the billed amount, Then the creator and platform reversals add up to the record's shares exactly", () => {
    // billed 7,503: creator 5,252, platform 2,251 (the worked example's a-usage-4).
    const { state, outputs } = run([
      ...paidRecord,
      refundOf("u-1", 1),
      refundOf("u-1", 2),
      refundOf("u-1", 7_500),
    ]);
    const adjustments = ofKind(outputs, "adjustment");
    assert.deepEqual(
      adjustments.map((a) => [a.billed_micros, a.creator_share_micros, a.platform_fee_micros]),
      [
        [-1n, 0n, -1n],
        [-2n, -2n, 0n],
        [-7_500n, -5_250n, -2_250n],
      ],
    );
    for (const a of adjustments) assert.equal(a.trial_tokens + a.paid_tokens, 0);
    const corrections = accountOf(state).corrections!;
    assert.equal(corrections.reversed_creator_share_micros, 5_252n);
    assert.equal(corrections.reversed_platform_fee_micros, 2_251n);
    assert.equal(corrections.refunded_micros, 7_503n);
    // Tokens are not returned by a refund.
    assert.equal(accountOf(state).paid_used_tokens, 1_000);
  });

  test("Given a refund larger than what is left, Then CORRECTION_INVALID naming both, and nothing changes", () => {
    const before = run([...paidRecord, refundOf("u-1", 7_000)]);
    const over = applyBatch(before.state, [{ record: refundOf("u-1", 504) }], defaultBillingConfig);
    const [rejected] = ofKind(over.outputs, "rejected");
    assert.equal(rejected?.code, "CORRECTION_INVALID");
    assert.match(rejected!.reason, /504 micros.*only 503/);
    assert.deepEqual(over.state, before.state);
  });

  test("Given a partly refunded record, When it is voided, Then the void reverses what is left, and the record's shares are reversed exactly in all", () => {
    const { state, outputs } = run([...paidRecord, refundOf("u-1", 3), voidOf("u-1")]);
    const [refund, voided] = ofKind(outputs, "adjustment");
    assert.equal(refund!.billed_micros + voided!.billed_micros, -7_503n);
    assert.equal(refund!.creator_share_micros + voided!.creator_share_micros, -5_252n);
    assert.equal(refund!.platform_fee_micros + voided!.platform_fee_micros, -2_251n);
    // 3 of 7,503 micros came back as money: the paid tokens they bought do not come back as tokens too.
    // floor(1,000 x 7,500 / 7,503) = 999.
    assert.equal(voided!.paid_tokens, -999);
    assert.equal(accountOf(state).paid_used_tokens, 1);
    // A refund after the void has nothing left.
    const after = run([...paidRecord, refundOf("u-1", 3), voidOf("u-1"), refundOf("u-1", 1)]);
    assert.equal(ofKind(after.outputs, "rejected")[0]?.code, "CORRECTION_INVALID");
  });

  test("Given a record refunded in full, When it is voided, Then its allowance tokens come back but no paid token (the money already did)", () => {
    // The paid record's usage, on an allowance of 400 tokens: 400 drawn from it, 600 paid.
    const records = [
      credit({ record_id: "budget", kind: "budget_set", tokens: 400, occurred_at: at(0) }),
      ...paidRecord.slice(1),
    ];
    const before = run(records);
    const outcome = ofKind(before.outputs, "usage_outcome")[0]!;
    assert.deepEqual([outcome.trial_tokens_used, outcome.paid_tokens_used], [400, 600]);
    const { state, outputs } = run([
      ...records,
      refundOf("u-1", Number(outcome.billed_micros)),
      voidOf("u-1"),
    ]);
    const [refund, voided] = ofKind(outputs, "adjustment");
    assert.equal(refund!.billed_micros, -outcome.billed_micros);
    assert.deepEqual(
      [voided!.trial_tokens, voided!.paid_tokens, voided!.billed_micros, voided!.creator_share_micros],
      [-400, 0, 0n, 0n],
    );
    const account = accountOf(state);
    assert.deepEqual([account.trial_used_tokens, account.paid_used_tokens], [0, 600]);
    assert.equal(account.corrections?.voided_tokens, 400);
  });

  test("Given any refunds of a paid record, When it is voided, Then the tokens and money given back never exceed what it took, and without a refund every paid token comes back", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5_000 }),
        fc.integer({ min: 1, max: 5_000 }),
        fc.array(fc.integer({ min: 1, max: 4_000 }), { maxLength: 4 }),
        (prompt, completion, refunds) => {
          const records: InputRecord[] = [
            credit({ record_id: "budget", kind: "budget_set", tokens: 0, occurred_at: at(0) }),
            credit({ record_id: "top", tokens: 100_000, occurred_at: at(0) }),
            usage({
              record_id: "u-1",
              model: "gpt-4o",
              agent_usage: { A: { prompt_tokens: prompt, completion_tokens: completion } },
              occurred_at: at(1),
            }),
            ...refunds.map((amount, i) => ({ ...refundOf("u-1", amount), record_id: `r-${i}` })),
            voidOf("u-1"),
          ];
          const { outputs } = run(records);
          const outcome = ofKind(outputs, "usage_outcome")[0]!;
          const paid = BigInt(outcome.paid_tokens_used);
          const billed = outcome.billed_micros;
          const refunded = ofKind(outputs, "adjustment")
            .filter((a) => a.adjustment === "refund")
            .reduce((sum, a) => sum - a.billed_micros, 0n);
          const voided = ofKind(outputs, "adjustment").find((a) => a.adjustment === "void")!;
          const back = BigInt(-voided.paid_tokens);
          // Value given back, in micros x tokens: refunded money as its share of the paid tokens, plus the
          // tokens returned as their share of the money. Never more than the record took.
          assert.ok(
            back * billed + refunded * paid <= paid * billed,
            `${back} tokens and ${refunded} micros back`,
          );
          // ...and short of it by less than one token's worth (the rounding is down, by under a token).
          assert.ok(paid * billed - (back * billed + refunded * paid) < billed);
          if (refunded === 0n) assert.equal(back, paid);
          assert.equal(-voided.billed_micros + refunded, billed);
        },
      ),
      { numRuns: 200 },
    );
  });

  test("Given a refund of a trial-only record, Then CORRECTION_INVALID (nothing was billed)", () => {
    const { outputs } = run([usage({ record_id: "u-t", occurred_at: at(1) }), refundOf("u-t", 1)]);
    assert.equal(ofKind(outputs, "rejected")[0]?.code, "CORRECTION_INVALID");
  });

  test("Given a refund of 0, Then the record is invalid", () => {
    assert.equal(refundRecordSchema.safeParse({ ...refundOf("u-1", 1), amount_micros: "0" }).success, false);
  });
});

describe("docs/records.md on corrections", () => {
  test("Given its void and refund examples, Then both decode as valid records", () => {
    const examples = [...renderRecordsDoc().matchAll(/```jsonc\n(\{"type": "(?:void|refund)".*)\n```/g)];
    assert.equal(examples.length, 2);
    for (const [, example] of examples) {
      const decoded = decodeRecord(example!, { maxBytes: DEFAULT_MAX_RECORD_BYTES });
      assert.ok(decoded.ok, example);
    }
  });
});

describe("corrections are operator records", () => {
  const secret = "s".repeat(32);
  const policy = { required: true as const, secret };
  for (const type of ["void", "refund"]) {
    test(`Given a ${type} record without a signature, Then RECORD_UNAUTHORIZED; signed, it passes`, () => {
      const bytes = JSON.stringify({ type, record_id: "x" });
      const refused = authorizeRecord(policy, { type, record_id: "x" }, bytes, {});
      assert.equal(refused.ok, false);
      const signed = authorizeRecord(policy, { type }, bytes, {
        "agentmeter-signature": signRecord(secret, bytes),
      });
      assert.equal(signed.ok, true);
    });
  }
});

/** Random usage, credits and corrections on two accounts, as the property tests' streams. */
const ACCOUNTS = [APP_IDS, { ...APP_IDS, platform_user_id: "end_2" }, PLATFORM_IDS] as const;
const step = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("usage" as const),
      account: fc.nat(2),
      model: fc.constantFrom("default", "gpt-4o", "gpt-4o-mini", "claude-sonnet"),
      prompt: fc.nat(6_000),
      completion: fc.nat(6_000),
      cached: fc.option(fc.nat(3_000), { nil: undefined }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("credit" as const),
      account: fc.nat(2),
      tokens: fc.nat(20_000),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("void" as const), account: fc.nat(2), target: fc.nat(40) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("refund" as const),
      account: fc.nat(2),
      target: fc.nat(40),
      amount: fc.integer({ min: 1, max: 200_000 }),
    }),
  },
);

function streamOf(steps: readonly Step[]): InputRecord[] {
  return steps.map((s, i) => {
    const ids = ACCOUNTS[s.account]!;
    const occurred_at = at(i);
    if (s.kind === "usage") {
      return usage({
        record_id: `u-${i}`,
        ...ids,
        model: s.model,
        agent_usage: {
          A: {
            prompt_tokens: s.prompt,
            completion_tokens: s.completion,
            ...(s.cached === undefined ? {} : { cached_prompt_tokens: s.cached }),
          },
        },
        occurred_at,
      });
    }
    if (s.kind === "credit") return credit({ record_id: `c-${i}`, ...ids, tokens: s.tokens, occurred_at });
    if (s.kind === "void") return voidOf(`u-${s.target}`, { record_id: `v-${i}`, ...ids, occurred_at });
    return refundOf(`u-${s.target}`, s.amount, { record_id: `r-${i}`, ...ids, occurred_at });
  });
}
type Step =
  | { kind: "usage"; account: number; model: string; prompt: number; completion: number; cached?: number }
  | { kind: "credit"; account: number; tokens: number }
  | { kind: "void"; account: number; target: number }
  | { kind: "refund"; account: number; target: number; amount: number };

function applyCut(records: readonly InputRecord[], cuts: readonly number[], cfg: BillingConfig) {
  return applyInCuts(records, cuts, cfg);
}

function net(account: AccountState) {
  const c = account.corrections;
  return {
    billed: account.billed_micros - (c?.reversed_billed_micros ?? 0n),
    creator: account.creator_share_micros - (c?.reversed_creator_share_micros ?? 0n),
    platform: account.platform_fee_micros - (c?.reversed_platform_fee_micros ?? 0n),
  };
}

describe("corrections: properties", () => {
  const steps = fc.array(step, { minLength: 1, maxLength: 60 });
  test("Property: billed = creator + platform for every usage outcome and adjustment and in total; nothing is reversed twice", () => {
    fc.assert(
      fc.property(steps, (s) => {
        const { state, outputs } = run(streamOf(s as Step[]));
        const perRecord = new Map<string, { billed: bigint; creator: bigint; platform: bigint }>();
        for (const o of outputs) {
          if (o.kind === "usage_outcome") {
            assert.equal(o.billed_micros, o.creator_share_micros + o.platform_fee_micros);
            perRecord.set(o.record_id, {
              billed: o.billed_micros,
              creator: o.creator_share_micros,
              platform: o.platform_fee_micros,
            });
          }
          if (o.kind === "adjustment") {
            assert.equal(o.billed_micros, o.creator_share_micros + o.platform_fee_micros);
            const left = perRecord.get(o.target_record_id)!;
            left.billed += o.billed_micros;
            left.creator += o.creator_share_micros;
            left.platform += o.platform_fee_micros;
            // Never below zero: a record is never reversed beyond what it billed, in either share.
            assert.ok(left.billed >= 0n && left.creator >= 0n && left.platform >= 0n, o.record_id);
            if (o.adjustment === "void") assert.deepEqual(left, { billed: 0n, creator: 0n, platform: 0n });
          }
        }
        for (const account of Object.values(state.accounts)) {
          const n = net(account);
          assert.equal(n.billed, n.creator + n.platform);
          assert.ok(account.trial_used_tokens >= 0 && account.paid_used_tokens >= 0);
          const c = account.corrections;
          if (c !== undefined) {
            assert.equal(
              account.tokens_used - c.voided_tokens,
              account.trial_used_tokens + account.paid_used_tokens,
            );
          }
        }
      }),
      { numRuns: 200 },
    );
  });

  test("Property: cutting the stream into batches anywhere, and replaying it, gives the same state and outputs", () => {
    fc.assert(
      fc.property(steps, fc.array(fc.nat(60), { maxLength: 5 }), (s, cuts) => {
        const records = streamOf(s as Step[]);
        const whole = run(records);
        const cut = applyCut(records, cuts, defaultBillingConfig);
        assert.deepEqual(cut.state, whole.state);
        assert.deepEqual(cut.outputs, whole.outputs);
        assert.deepEqual(run(records), whole);
      }),
      { numRuns: 100 },
    );
  });
});
