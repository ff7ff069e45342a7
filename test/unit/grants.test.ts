import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { applyBatch, budgetStateOf, defaultBillingConfig, emptyState } from "../../pipeline/core/index.ts";
import {
  budgetStateSchema,
  creditRecordSchema,
  type InputRecord,
  type Output,
  type TopicRecord,
  tickRecordSchema,
  voidRecordSchema,
} from "../../schemas/index.ts";
import { applyInCuts } from "./apply-in-cuts.ts";
import { APP_IDS, accountOf, at, budgetEvents, credit, ofKind, run, tokens, usage } from "./builders.ts";

/** A dated grant; the account's trial is set to 0 first by `noTrial` so grants are all there is. */
function grant(id: string, tokenCount: number, fields: Record<string, unknown> = {}) {
  return creditRecordSchema.parse({
    type: "credit",
    record_id: id,
    kind: "grant",
    ...APP_IDS,
    tokens: tokenCount,
    priority: 0,
    occurred_at: at(0),
    ...fields,
  });
}
const noTrial = credit({ record_id: "b-0", kind: "budget_set", tokens: 0, occurred_at: at(0) });

function use(id: string, minute: number, count: number, chat = "chat-1") {
  return usage({ record_id: id, chat_id: chat, occurred_at: at(minute), ...tokens(count) });
}

describe("dated grants: burn order", () => {
  test("Given grants of different priority, expiry and age, Then usage burns them by priority, then earliest expiry, then oldest, then id, and paid tokens last", () => {
    const { outputs, state } = run([
      noTrial,
      credit({ record_id: "paid", tokens: 1_000, occurred_at: at(0) }),
      grant("g-late-expiry", 100, { expires_at: at(500) }),
      grant("g-early-expiry", 100, { expires_at: at(400) }),
      grant("g-no-expiry-b", 100, { occurred_at: at(1) }),
      grant("g-no-expiry-a", 100, { occurred_at: at(1) }),
      grant("g-old", 100, { occurred_at: at(0) }),
      grant("g-priority-2", 100, { priority: 2, expires_at: at(100) }),
      use("u-1", 10, 650),
    ]);
    const [outcome] = ofKind(outputs, "usage_outcome");
    assert.equal(outcome?.grant_tokens_used, 600);
    assert.equal(outcome?.paid_tokens_used, 50);
    assert.equal(outcome?.decision, "mixed");
    // Grant tokens are free: only the 50 paid tokens are billed (650 x $30/M = 19,500; 50/650 of it).
    assert.equal(outcome?.billed_micros, 1_500n);
    const grants = accountOf(state).grants!;
    assert.deepEqual(
      Object.entries(grants).map(([id, g]) => [id, g.used]),
      [
        ["g-late-expiry", 100],
        ["g-early-expiry", 100],
        ["g-no-expiry-b", 100],
        ["g-no-expiry-a", 100],
        ["g-old", 100],
        ["g-priority-2", 100],
      ],
    );
    // The order itself: a smaller draw shows who goes first.
    const partial = run([
      noTrial,
      grant("g-late-expiry", 100, { expires_at: at(500) }),
      grant("g-early-expiry", 100, { expires_at: at(400) }),
      grant("g-no-expiry-b", 100, { occurred_at: at(1) }),
      grant("g-no-expiry-a", 100, { occurred_at: at(1) }),
      grant("g-old", 100, { occurred_at: at(0) }),
      grant("g-priority-2", 100, { priority: 2, expires_at: at(100) }),
      use("u-1", 10, 1),
      use("u-2", 11, 100),
      use("u-3", 12, 100),
      use("u-4", 13, 100),
      use("u-5", 14, 100),
    ]);
    const used = (id: string) => accountOf(partial.state).grants![id]!.used;
    assert.deepEqual(
      ["g-early-expiry", "g-late-expiry", "g-old", "g-no-expiry-a", "g-no-expiry-b", "g-priority-2"].map(
        used,
      ),
      [100, 100, 100, 100, 1, 0],
    );
  });

  test("Given a grant and an allowance, Then the grant burns before the allowance", () => {
    const { outputs } = run([grant("g-1", 100, { expires_at: at(100) }), use("u-1", 1, 150)]);
    const [outcome] = ofKind(outputs, "usage_outcome");
    assert.deepEqual(
      [outcome?.grant_tokens_used, outcome?.trial_tokens_used, outcome?.paid_tokens_used],
      [100, 50, 0],
    );
    assert.equal(outcome?.decision, "trial");
  });
});

describe("dated grants: time", () => {
  test("Given a grant not yet effective, Then it is not available until the first record at or after effective_at", () => {
    const { outputs, state } = run([
      noTrial,
      grant("g-1", 1_000, { effective_at: at(60) }),
      use("u-1", 30, 100),
      use("u-2", 60, 100),
    ]);
    const [first, second] = ofKind(outputs, "usage_outcome");
    assert.equal(first?.grant_tokens_used, undefined);
    assert.equal(first?.decision, "overdraft");
    assert.equal(second?.grant_tokens_used, 100);
    assert.equal(accountOf(state).grants!["g-1"]!.active, true);
  });

  test("Given a record straddling a grant's expiry, Then the grant is spent up to its expires_at instant and forfeited at the first record past it", () => {
    const { outputs, state } = run([
      noTrial,
      credit({ record_id: "paid", tokens: 1_000, occurred_at: at(0) }),
      grant("g-1", 500, { expires_at: at(60) }),
      use("u-at-expiry", 60, 200),
      use("u-after", 61, 200),
    ]);
    const [atExpiry, after] = ofKind(outputs, "usage_outcome");
    assert.equal(atExpiry?.grant_tokens_used, 200);
    assert.equal(after?.grant_tokens_used, undefined);
    assert.equal(after?.paid_tokens_used, 200);
    const [expired] = ofKind(outputs, "budget_event").filter((e) => e.event === "grant_expired");
    assert.ok(expired?.event === "grant_expired");
    assert.deepEqual(
      [expired.record_id, expired.grant_id, expired.forfeited_tokens],
      ["u-after", "g-1", 300],
    );
    assert.equal(accountOf(state).grants!["g-1"], undefined);
    // The expiry comes before the record's own outcome.
    const order = outputs
      .filter((o) => o.record_id === "u-after")
      .map((o) => (o.kind === "budget_event" ? o.event : o.kind));
    assert.deepEqual(order.slice(0, 2), ["grant_expired", "usage_outcome"]);
  });

  test("Given an expiry that leaves nothing available, Then the account cannot continue and the next usage pauses its chat as on exhaustion", () => {
    const { outputs, state } = run([
      noTrial,
      grant("g-1", 500, { expires_at: at(60) }),
      use("u-1", 1, 100),
      credit({ record_id: "late-note", kind: "top_up", tokens: 0, occurred_at: at(61) }),
      use("u-2", 62, 50),
    ]);
    const expired = ofKind(outputs, "budget_event").find((e) => e.event === "grant_expired");
    assert.equal(expired?.record_id, "late-note");
    assert.equal(expired?.balance.available_tokens, 0);
    const afterExpiry = outputs.filter((o) => o.record_id === "u-2");
    assert.ok(budgetEvents(afterExpiry).includes("exhausted"));
    assert.equal(budgetStateOf(accountOf(state)).can_continue, false);
  });

  test("Given a threshold raised, then a grant that starts later (by a tick or a record), Then the threshold is re-armed and the next crossing raised again", () => {
    const trial100 = credit({ record_id: "b-100", kind: "budget_set", tokens: 100, occurred_at: at(0) });
    const later = grant("g-later", 100, { occurred_at: at(2), effective_at: at(10) });
    const tick = tickRecordSchema.parse({
      type: "tick",
      record_id: "t-10",
      partition: 0,
      occurred_at: at(10),
    });
    for (const starter of [[tick], []] as TopicRecord[][]) {
      const records: TopicRecord[] = [trial100, use("u-85", 1, 85), later, ...starter, use("u-90", 11, 90)];
      const { outputs, state } = applyBatch(
        emptyState(),
        records.map((record) => ({ record })),
        defaultBillingConfig,
      );
      // 85 of 100 raised 80%; the grant makes it 85 of 200 (re-armed); 175 of 200 crosses 80% again.
      const raised = (outputs as Output[]).flatMap((o) =>
        o.kind === "budget_event" && o.event === "threshold_reached" ? [[o.record_id, o.used_bp]] : [],
      );
      assert.deepEqual(raised, [
        ["u-85", 8_500],
        ["u-90", 8_750],
      ]);
      assert.deepEqual(accountOf(state).thresholds_raised_bp, [8_000]);
    }
  });

  test("Given paused chats, When a grant starting inside a usage record is drained by that record, Then no chat is called resumable (the account cannot continue after it)", () => {
    const { outputs, state } = run([
      noTrial,
      use("u-exhaust", 1, 100, "chat-1"),
      grant("g-later", 500, { occurred_at: at(2), effective_at: at(3) }),
      use("u-drain", 4, 800, "chat-2"),
    ]);
    const own = outputs.filter((o) => o.record_id === "u-drain");
    assert.ok(!budgetEvents(own).includes("resumable"), budgetEvents(own).join(", "));
    assert.equal(budgetStateOf(accountOf(state)).can_continue, false);
    // A grant that starts and is not drained still makes the chat resumable, in the record that starts it.
    const kept = run([
      noTrial,
      use("u-exhaust", 1, 100, "chat-1"),
      grant("g-later", 500, { occurred_at: at(2), effective_at: at(3) }),
      use("u-small", 4, 100, "chat-2"),
    ]);
    assert.deepEqual(budgetEvents(kept.outputs.filter((o) => o.record_id === "u-small")), ["resumable"]);
  });

  test("Given a late grant already past its expiry, Then its credit_applied shows the balance without it (it cannot be spent), then grant_expired forfeits it all", () => {
    const { outputs, state } = run([
      noTrial,
      use("u-1", 5, 10),
      grant("g-late", 500, { occurred_at: at(0), expires_at: at(2) }),
    ]);
    const own = outputs.filter((o) => o.record_id === "g-late");
    assert.deepEqual(
      own.map((o) => (o.kind === "budget_event" ? o.event : o.kind)),
      ["credit_applied", "grant_expired"],
    );
    const applied = ofKind(own, "credit_applied")[0]!;
    assert.equal(applied.can_continue, false);
    assert.equal(applied.balance_after.available_tokens, -10);
    assert.equal(applied.balance_after.grant_tokens, 0);
    const expired = ofKind(own, "budget_event")[0]!;
    assert.ok(expired.event === "grant_expired" && expired.forfeited_tokens === 500);
    assert.equal(budgetStateOf(accountOf(state)).can_continue, false);
  });

  test("Given a tick past a grant's expiry, Then the grant expires at the tick (an idle account)", () => {
    const records: TopicRecord[] = [
      noTrial,
      grant("g-1", 500, { expires_at: at(60) }),
      tickRecordSchema.parse({ type: "tick", record_id: "t-1", partition: 0, occurred_at: at(59) }),
      tickRecordSchema.parse({ type: "tick", record_id: "t-2", partition: 0, occurred_at: at(61) }),
    ];
    const { outputs, state } = applyBatch(
      emptyState(),
      records.map((record) => ({ record })),
      defaultBillingConfig,
    );
    const expired = (outputs as Output[]).filter(
      (o) => o.kind === "budget_event" && o.event === "grant_expired",
    );
    assert.deepEqual(
      expired.map((e) => e.record_id),
      ["t-2"],
    );
    assert.equal(accountOf(state).grants!["g-1"], undefined);
  });

  test("Given a void of a record that drew a grant, Then its tokens go back to the grant while it lasts, and are forfeited with it after", () => {
    const voidOf = (target: string, minute: number) =>
      voidRecordSchema.parse({
        type: "void",
        record_id: `v-${target}`,
        ...APP_IDS,
        target_record_id: target,
        occurred_at: at(minute),
      });
    const inTime = run([
      noTrial,
      grant("g-1", 500, { expires_at: at(60) }),
      use("u-1", 1, 300),
      voidOf("u-1", 2),
    ]);
    const [adjustment] = ofKind(inTime.outputs, "adjustment");
    assert.equal(adjustment?.grant_tokens, -300);
    assert.equal(accountOf(inTime.state).grants!["g-1"]!.used, 0);
    const late = run([
      noTrial,
      grant("g-1", 500, { expires_at: at(60) }),
      use("u-1", 1, 300),
      voidOf("u-1", 70),
    ]);
    const [lateAdjustment] = ofKind(late.outputs, "adjustment");
    assert.equal(lateAdjustment?.grant_tokens, 0);
  });

  test("Given priority, effective_at or expires_at on a top_up, or an expiry before the start, Then the record is invalid", () => {
    const base = { type: "credit", record_id: "x", ...APP_IDS, tokens: 1, occurred_at: at(0) };
    assert.equal(creditRecordSchema.safeParse({ ...base, kind: "top_up", priority: 1 }).success, false);
    assert.equal(
      creditRecordSchema.safeParse({ ...base, kind: "grant", effective_at: at(10), expires_at: at(10) })
        .success,
      false,
    );
    assert.equal(creditRecordSchema.safeParse({ ...base, kind: "grant", expires_at: at(1) }).success, true);
  });

  test("Given a grant naming no date, Then it is a free bucket too: not billed, not split, not money paid, and an end user who never bought tokens pauses trial_exhausted", () => {
    const { state, outputs } = run([
      noTrial,
      credit({
        record_id: "g-plain",
        kind: "grant",
        tokens: 100,
        amount_micros: "500000",
        occurred_at: at(1),
      }),
      use("u-1", 2, 150),
    ]);
    const outcome = ofKind(outputs, "usage_outcome")[0]!;
    assert.equal(outcome.grant_tokens_used, 100);
    assert.equal(outcome.paid_tokens_used, 50, "the rest overdraws the paid balance");
    assert.equal(
      outcome.billed_micros,
      (outcome.cost_micros * 50n) / 150n,
      "only the 50 paid tokens are billed",
    );
    assert.equal(outcome.creator_share_micros + outcome.platform_fee_micros, outcome.billed_micros);
    assert.equal(outcome.pause_reason, "trial_exhausted", "a grant is not a purchase");
    const account = accountOf(state);
    assert.equal(account.credited_tokens, 0);
    assert.equal(account.paid_amount_micros, 0n, "an amount on a grant is not money paid");
    assert.equal(budgetStateOf(account).grant_tokens, 0);
  });

  test("Given an account without grants, Then its budget state and balances carry no grant field (as before)", () => {
    const { state, outputs } = run([
      use("u-1", 1, 100),
      credit({ record_id: "c-1", kind: "top_up", tokens: 5 }),
    ]);
    const budget = budgetStateOf(accountOf(state));
    assert.equal("grant_tokens" in budget, false);
    assert.equal("grant_tokens" in ofKind(outputs, "usage_outcome")[0]!.balance_after, false);
    const withGrant = run([grant("g-1", 100, { expires_at: at(100) })]);
    const granted = budgetStateOf(accountOf(withGrant.state));
    assert.equal(granted.grant_tokens, 100);
    assert.equal(granted.available_tokens, 10_100);
    assert.ok(budgetStateSchema.safeParse(granted).success);
  });
});

type Step =
  | { kind: "usage"; minute: number; tokens: number }
  | { kind: "grant"; minute: number; tokens: number; priority: number; start: number; life: number | null }
  | { kind: "top_up"; minute: number; tokens: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({ kind: fc.constant("usage" as const), minute: fc.nat(600), tokens: fc.nat(3_000) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("grant" as const),
      minute: fc.nat(600),
      tokens: fc.nat(3_000),
      priority: fc.nat(3),
      start: fc.nat(60),
      life: fc.option(fc.integer({ min: 1, max: 300 }), { nil: null }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant("top_up" as const),
      minute: fc.nat(600),
      tokens: fc.nat(3_000),
    }),
  },
);

function streamOf(steps: readonly Step[]): InputRecord[] {
  return steps.map((s, i) => {
    if (s.kind === "usage") return use(`u-${i}`, s.minute, s.tokens, `chat-${i % 3}`);
    if (s.kind === "top_up")
      return credit({ record_id: `c-${i}`, tokens: s.tokens, occurred_at: at(s.minute) });
    return grant(`g-${i}`, s.tokens, {
      priority: s.priority,
      occurred_at: at(s.minute),
      effective_at: at(s.minute + s.start),
      ...(s.life === null ? {} : { expires_at: at(s.minute + s.start + s.life) }),
    });
  });
}

describe("dated grants: properties", () => {
  test("Property: tokens drawn from grants never exceed what they hold; every token used is drawn from exactly one source; batch cuts and replays agree", () => {
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 50 }),
        fc.array(fc.nat(50), { maxLength: 4 }),
        (steps, cuts) => {
          const records = streamOf(steps);
          const whole = run(records);
          for (const o of whole.outputs) {
            if (o.kind === "usage_outcome") {
              assert.equal(
                o.tokens_used,
                o.trial_tokens_used + o.paid_tokens_used + (o.grant_tokens_used ?? 0),
              );
              assert.equal(o.billed_micros, o.creator_share_micros + o.platform_fee_micros);
            }
            if (o.kind === "budget_event" && o.event === "grant_expired") assert.ok(o.forfeited_tokens >= 0);
          }
          for (const account of Object.values(whole.state.accounts)) {
            for (const g of Object.values(account.grants ?? {})) assert.ok(g.used >= 0 && g.used <= g.tokens);
          }
          const { state, outputs } = applyInCuts(records, cuts, defaultBillingConfig);
          assert.deepEqual(state, whole.state);
          assert.deepEqual(outputs, whole.outputs);
          assert.deepEqual(run(records), whole);
        },
      ),
      { numRuns: 150 },
    );
  });
});
