import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { applyBatch, budgetStateOf, emptyState } from "../../pipeline/core/index.ts";
import {
  type InputRecord,
  type Output,
  type TopicOutput,
  type TopicRecord,
  tickRecordSchema,
} from "../../schemas/index.ts";
import { applyInCuts } from "./apply-in-cuts.ts";
import {
  accountOf,
  budgetEvents,
  config,
  credit,
  ofKind,
  PLATFORM_IDS,
  run,
  session,
  tokens,
  usage,
  voidOf,
} from "./builders.ts";

const KEY = "platform:user_123";
const monthly = (fields: Record<string, unknown> = {}) =>
  config({
    platform_allowance_tokens: 1_000,
    allowance_period: {
      platform: { every: "month", anchor: "2025-01-01T00:00:00Z", rollover_max_tokens: 500, ...fields },
    },
  });

function use(id: string, when: string, count: number, chat = "chat-1") {
  return usage({ record_id: id, ...PLATFORM_IDS, chat_id: chat, occurred_at: when, ...tokens(count) });
}

describe("budget periods", () => {
  test("Given a monthly allowance, When the first record of the next month comes, Then period_reset carries what was left within the bounds and the allowance is whole again", () => {
    const { state, outputs } = run(
      [use("u-1", "2025-01-10T00:00:00Z", 800), use("u-2", "2025-02-03T00:00:00Z", 100)],
      monthly(),
    );
    const reset = ofKind(outputs, "budget_event").find((e) => e.event === "period_reset");
    assert.ok(reset?.event === "period_reset");
    assert.deepEqual(
      [reset.record_id, reset.period_start, reset.periods, reset.left_tokens, reset.carried_tokens],
      ["u-2", "2025-02-01T00:00:00.000Z", 1, 200, 200],
    );
    const [, second] = ofKind(outputs, "usage_outcome");
    assert.equal(second?.trial_tokens_used, 100);
    assert.equal(budgetStateOf(accountOf(state, KEY)).trial_remaining_tokens, 1_100);
  });

  test("Given two periods skipped with no traffic, Then each boundary carries once: an empty period carries up to the max", () => {
    const { state, outputs } = run(
      [use("u-1", "2025-01-10T00:00:00Z", 1_000), use("u-2", "2025-04-02T00:00:00Z", 0)],
      monthly({ rollover_min_tokens: 100 }),
    );
    const reset = ofKind(outputs, "budget_event").find((e) => e.event === "period_reset");
    // Jan left 0 -> carry 100 (the min); Feb, no traffic, left 1,100 -> 500 (the max); Mar the same.
    assert.ok(reset?.event === "period_reset");
    assert.deepEqual([reset.periods, reset.left_tokens, reset.carried_tokens], [3, 0, 500]);
    assert.equal(budgetStateOf(accountOf(state, KEY)).trial_remaining_tokens, 1_500);
  });

  test("Given a chat paused on an exhausted allowance, When a new period starts, Then thresholds re-arm and the chat becomes resumable", () => {
    const { state, outputs } = run(
      [
        session({
          record_id: "s-1",
          ...PLATFORM_IDS,
          chat_id: "chat-1",
          occurred_at: "2025-01-01T00:00:00Z",
        }),
        use("u-1", "2025-01-10T00:00:00Z", 1_000),
        credit({ record_id: "c-0", ...PLATFORM_IDS, tokens: 0, occurred_at: "2025-02-01T00:00:00Z" }),
      ],
      monthly(),
    );
    assert.deepEqual(budgetEvents(outputs.filter((o) => o.record_id === "u-1")), [
      "threshold_reached",
      "threshold_reached",
      "exhausted",
    ]);
    const atReset = budgetEvents(outputs.filter((o) => o.record_id === "c-0"));
    assert.deepEqual(atReset, ["period_reset", "resumable"]);
    const account = accountOf(state, KEY);
    assert.deepEqual(account.thresholds_raised_bp, []);
    assert.equal(budgetStateOf(account).paused_chats[0]?.can_resume, true);
  });

  test("Given an idle account, When a tick passes the boundary, Then the period resets at the tick", () => {
    const records: TopicRecord[] = [
      use("u-1", "2025-01-10T00:00:00Z", 300),
      tickRecordSchema.parse({
        type: "tick",
        record_id: "t-1",
        partition: 0,
        occurred_at: "2025-01-31T23:59:59Z",
      }),
      tickRecordSchema.parse({
        type: "tick",
        record_id: "t-2",
        partition: 0,
        occurred_at: "2025-02-01T00:00:00Z",
      }),
    ];
    const { outputs } = applyBatch(
      emptyState(),
      records.map((record) => ({ record })),
      monthly(),
    );
    const resets = (outputs as TopicOutput[]).filter(
      (o) => o.kind === "budget_event" && o.event === "period_reset",
    );
    assert.deepEqual(
      resets.map((o) => o.record_id),
      ["t-2"],
    );
  });

  test("Given the default config, Then a creator's platform allowance resets each calendar month (UTC) with nothing carried, and an end user's trial never resets", () => {
    const appKey = "app:app_456:enduser_789";
    const { outputs, state } = run(
      [
        use("u-1", "2025-01-10T00:00:00Z", 800),
        usage({ record_id: "a-1", occurred_at: "2025-01-10T00:00:00Z", ...tokens(800) }),
        use("u-2", "2025-03-03T00:00:00Z", 100),
        usage({ record_id: "a-2", occurred_at: "2025-03-03T00:00:00Z", ...tokens(100) }),
      ],
      config({ platform_allowance_tokens: 1_000 }),
    );
    const resets = ofKind(outputs, "budget_event").filter((o) => o.event === "period_reset");
    assert.deepEqual(
      resets.map((o) => [o.record_id, o.account_key]),
      [["u-2", KEY]],
    );
    const creator = accountOf(state, KEY);
    assert.deepEqual(creator.period, { start: "2025-03-01T00:00:00.000Z", carried_tokens: 0 });
    assert.equal(creator.trial_used_tokens, 100, "March used 100 of a fresh 1,000");
    assert.equal(accountOf(state, appKey).period, undefined);
    assert.equal(accountOf(state, appKey).trial_used_tokens, 900, "the trial is one-off");
  });

  test("Given a period that ends in overdraft, Then the overage carries into the next period: the debt stays on the paid balance and the new allowance is available net of it", () => {
    const { outputs, state } = run(
      [
        use("u-1", "2025-01-10T00:00:00Z", 1_300, "chat-1"),
        use("u-2", "2025-02-02T00:00:00Z", 100, "chat-2"),
      ],
      config({ platform_allowance_tokens: 1_000 }),
    );
    const [first, second] = ofKind(outputs, "usage_outcome");
    assert.equal(first?.decision, "overdraft", "January used 300 beyond its allowance");
    assert.equal(second?.decision, "trial", "February's usage draws February's allowance");
    const view = budgetStateOf(accountOf(state, KEY));
    assert.equal(view.paid_tokens, -300, "the overage is still owed");
    assert.equal(view.trial_remaining_tokens, 900);
    assert.equal(view.available_tokens, 600, "1,000 new - 100 used - 300 carried overage");
  });

  test("Given carry_overage false, When a period ends in overdraft, Then the debt is written off at the boundary: the paid balance starts at zero and period_reset says how much", () => {
    const writeOff = config({
      platform_allowance_tokens: 1_000,
      allowance_period: { platform: { every: "month", carry_overage: false } },
    });
    const { outputs, state } = run(
      [
        credit({ record_id: "c-1", ...PLATFORM_IDS, tokens: 200, occurred_at: "2025-01-05T00:00:00Z" }),
        use("u-1", "2025-01-10T00:00:00Z", 1_500, "chat-1"),
        use("u-2", "2025-02-02T00:00:00Z", 100, "chat-2"),
      ],
      writeOff,
    );
    assert.equal(
      ofKind(outputs, "usage_outcome")[0]?.decision,
      "overdraft",
      "January: 1,000 + 200 paid, 300 owed",
    );
    const reset = ofKind(outputs, "budget_event").find((event) => event.event === "period_reset");
    assert.ok(reset?.event === "period_reset");
    assert.equal(reset.written_off_tokens, 300);
    assert.equal(reset.balance.paid_tokens, 0);
    const account = accountOf(state, KEY);
    assert.equal(account.overage_written_off_tokens, 300);
    assert.equal(account.in_overdraft, false);
    const view = budgetStateOf(account);
    assert.equal(view.paid_tokens, 0);
    assert.equal(view.available_tokens, 900, "1,000 new - 100 used, nothing owed");
    // The money of January's usage is billed as it was: a write-off forgives tokens, never amounts
    assert.equal(ofKind(outputs, "usage_outcome")[0]?.paid_tokens_used, 500);
  });

  test("Given carry_overage false and no overdraft at the boundary, Then nothing is written off and period_reset has no written_off_tokens", () => {
    const { outputs, state } = run(
      [use("u-1", "2025-01-10T00:00:00Z", 400), use("u-2", "2025-02-02T00:00:00Z", 100, "chat-2")],
      config({
        platform_allowance_tokens: 1_000,
        allowance_period: { platform: { every: "month", carry_overage: false } },
      }),
    );
    const reset = ofKind(outputs, "budget_event").find((event) => event.event === "period_reset");
    assert.ok(reset?.event === "period_reset");
    assert.equal("written_off_tokens" in reset, false);
    assert.equal(accountOf(state, KEY).overage_written_off_tokens, undefined);
  });

  test("Given a write-off, When a record of the ended period is voided, Then its paid tokens come off the write-off first and only the rest returns to the balance", () => {
    const writeOff = config({
      platform_allowance_tokens: 1_000,
      allowance_period: { platform: { every: "month", carry_overage: false } },
    });
    const records: InputRecord[] = [
      use("u-1", "2025-01-10T00:00:00Z", 1_000, "chat-1"),
      use("u-2", "2025-01-11T00:00:00Z", 300, "chat-1"),
      use("u-3", "2025-01-12T00:00:00Z", 500, "chat-1"),
      // February: the boundary writes off 800 (u-2's 300 and u-3's 500 were paid tokens never bought)
      use("u-4", "2025-02-02T00:00:00Z", 100, "chat-2"),
    ];
    const voidU2 = voidOf("u-2", { ...PLATFORM_IDS, occurred_at: "2025-02-03T00:00:00Z" });
    const { outputs, state } = run([...records, voidU2], writeOff);
    const account = accountOf(state, KEY);
    // Without u-2 the write-off would have been 500 and the balance after the boundary the same: 0
    assert.equal(account.overage_written_off_tokens, 500);
    assert.equal(budgetStateOf(account).paid_tokens, 0, "a forgiven debt is not paid out again");
    const [adjustment] = ofKind(outputs, "adjustment");
    assert.equal(adjustment?.paid_tokens, 0, "no paid token went back to the balance");
    assert.equal(
      adjustment?.billed_micros,
      -ofKind(outputs, "usage_outcome")[1]!.billed_micros,
      "the money is reversed whole",
    );
    // A record of the current period gives its tokens back as before
    const current = run(
      [...records, voidOf("u-4", { ...PLATFORM_IDS, occurred_at: "2025-02-03T00:00:00Z" })],
      writeOff,
    );
    assert.equal(budgetStateOf(accountOf(current.state, KEY)).available_tokens, 1_000);
  });

  test("Given a write-off at an earlier boundary, When a record drawn after it is voided in a later period, Then all its paid tokens come back: that write-off owes nothing to it", () => {
    const writeOff = config({
      platform_allowance_tokens: 1_000,
      allowance_period: { platform: { every: "month", carry_overage: false } },
    });
    const records: InputRecord[] = [
      use("jan", "2025-01-10T00:00:00Z", 1_300),
      // February 1: 300 written off; 1,000 bought
      credit({ record_id: "top-up", ...PLATFORM_IDS, tokens: 1_000, occurred_at: "2025-02-01T00:00:00Z" }),
      // 1,000 allowance and 500 paid: nothing owed at the March boundary
      use("feb", "2025-02-27T00:00:00Z", 1_500),
    ];
    const voidFeb = (when: string) => voidOf("feb", { ...PLATFORM_IDS, occurred_at: when });
    for (const when of ["2025-02-28T00:00:00Z", "2025-03-02T00:00:00Z"]) {
      const { outputs, state } = run([...records, voidFeb(when)], writeOff);
      const account = accountOf(state, KEY);
      assert.equal(
        budgetStateOf(account).paid_tokens,
        1_000,
        `voided on ${when}: the 500 paid tokens are back`,
      );
      assert.equal(ofKind(outputs, "adjustment")[0]?.paid_tokens, -500, when);
      assert.equal(account.overage_written_off_tokens, 300, `${when}: January's debt stays forgiven`);
    }
    // A record drawn before a later write-off still gives it back first (the rule above), also after an
    // older write-off: March's boundary writes off feb2's 400 overdraft.
    const later = run(
      [
        ...records,
        use("feb2", "2025-02-28T00:00:00Z", 900),
        voidOf("feb2", { ...PLATFORM_IDS, occurred_at: "2025-03-02T00:00:00Z" }),
      ],
      writeOff,
    );
    const account = accountOf(later.state, KEY);
    assert.equal(ofKind(later.outputs, "adjustment")[0]?.paid_tokens, -500, "900 paid, 400 of them forgiven");
    assert.equal(account.overage_written_off_tokens, 300, "January's 300 stay forgiven");
    assert.equal(budgetStateOf(account).paid_tokens, 500, "as without feb2: 1,000 bought, 500 used");
  });
  test("Given a record dated before a boundary that arrives after its account crossed it (by a later record or by a tick), When it is voided, Then its tokens go back to the period it drew from", () => {
    const late = use("u-late", "2025-01-31T23:59:58Z", 1_000, "chat-3");
    const voidLate = voidOf("u-late", { ...PLATFORM_IDS, occurred_at: "2025-02-03T00:00:00Z" });
    const crossings: { by: string; record: TopicRecord; drawn: [number, number] }[] = [
      // February's first record uses 100: the late one finds 900 of February's allowance left
      { by: "a record", record: use("u-3", "2025-02-01T00:00:05Z", 100, "chat-2"), drawn: [900, 100] },
      // A tick moves the account into February without using anything (and without moving its records'
      // event time): the late one finds February's allowance whole
      {
        by: "a tick",
        record: tickRecordSchema.parse({
          type: "tick",
          record_id: "t-1",
          partition: 0,
          occurred_at: "2025-02-01T00:00:05Z",
        }),
        drawn: [1_000, 0],
      },
    ];
    for (const carry_overage of [true, false]) {
      for (const crossing of crossings) {
        const what = `carry ${carry_overage}, crossed by ${crossing.by}`;
        const periods = config({
          platform_allowance_tokens: 1_000,
          allowance_period: { platform: { every: "month", carry_overage } },
        });
        const runAll = (records: readonly TopicRecord[]) =>
          applyBatch(
            emptyState(),
            records.map((record) => ({ record })),
            periods,
          );
        // January ends 300 in overdraft (written off when carry_overage is false); February is opened
        // before the late record comes.
        const before: TopicRecord[] = [
          use("u-1", "2025-01-10T00:00:00Z", 1_000),
          use("u-2", "2025-01-11T00:00:00Z", 300),
          crossing.record,
        ];
        const first = accountOf(runAll(before).state, KEY);
        const { outputs, state } = runAll([...before, late, voidLate]);
        const [drawn] = ofKind(outputs as Output[], "usage_outcome").filter((o) => o.record_id === "u-late");
        assert.deepEqual([drawn?.trial_tokens_used, drawn?.paid_tokens_used], crossing.drawn, what);
        const [adjustment] = ofKind(outputs as Output[], "adjustment");
        assert.deepEqual(
          [adjustment?.trial_tokens, adjustment?.paid_tokens],
          [0 - crossing.drawn[0], 0 - crossing.drawn[1]],
          what,
        );
        const account = accountOf(state, KEY);
        const tokensOf = (balance: ReturnType<typeof budgetStateOf>) => [
          balance.trial_remaining_tokens,
          balance.paid_tokens,
          balance.available_tokens,
        ];
        assert.deepEqual(
          tokensOf(budgetStateOf(account)),
          tokensOf(budgetStateOf(first)),
          `${what}: the balance is as if it never came`,
        );
        assert.equal(
          account.overage_written_off_tokens,
          first.overage_written_off_tokens,
          `${what}: the write-off is January's`,
        );
      }
    }
  });

  test("Given allowance_period.platform null, Then the creator's allowance is one-off: nothing resets across months", () => {
    const { outputs, state } = run(
      [use("u-1", "2025-01-10T00:00:00Z", 800), use("u-2", "2025-03-03T00:00:00Z", 100)],
      config({ platform_allowance_tokens: 1_000, allowance_period: { platform: null } }),
    );
    assert.equal(budgetEvents(outputs).includes("period_reset"), false);
    assert.equal(accountOf(state, KEY).period, undefined);
    assert.equal(accountOf(state, KEY).trial_used_tokens, 900);
  });

  test("Given a bad period config, Then CONFIG_INVALID", () => {
    assert.throws(() => monthly({ rollover_min_tokens: 600 }), /rollover_min_tokens/);
    assert.throws(() => monthly({ anchor: "2025-01-31T00:00:00Z" }), /at most 28/);
  });

  test("Property: with daily periods, overage carried or written off, top-ups and voids, batch cuts and replays give the same state and outputs, and a write-off never pays out", () => {
    const step = fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant("usage" as const),
          hours: fc.nat(30),
          count: fc.nat(1_500),
          chat: fc.nat(2),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant("top_up" as const),
          hours: fc.nat(30),
          count: fc.integer({ min: 1, max: 2_000 }),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({ kind: fc.constant("void" as const), hours: fc.nat(30), target: fc.nat(40) }),
      },
    );
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 40 }),
        fc.array(fc.nat(40), { maxLength: 4 }),
        fc.boolean(),
        (steps, cuts, carryOverage) => {
          const cfg = config({
            app_trial_tokens: { default: 2_000 },
            allowance_period: {
              app_usage: {
                every: "day",
                rollover_max_tokens: 1_000,
                rollover_min_tokens: 0,
                carry_overage: carryOverage,
              },
            },
          });
          let hours = 0;
          const records: InputRecord[] = steps.map((s, i) => {
            hours += s.hours;
            const occurred_at = new Date(
              Date.parse("2025-03-01T00:00:00Z") + hours * 3_600_000,
            ).toISOString();
            if (s.kind === "top_up") return credit({ record_id: `c-${i}`, tokens: s.count, occurred_at });
            if (s.kind === "void") return voidOf(`u-${s.target}`, { record_id: `v-${i}`, occurred_at });
            return usage({ record_id: `u-${i}`, chat_id: `chat-${s.chat}`, occurred_at, ...tokens(s.count) });
          });
          const whole = run(records, cfg);
          for (const o of ofKind(whole.outputs, "usage_outcome")) {
            assert.equal(o.tokens_used, o.trial_tokens_used + o.paid_tokens_used);
          }
          for (const o of ofKind(whole.outputs, "budget_event")) {
            if (o.event !== "period_reset") continue;
            if (carryOverage) assert.equal(o.written_off_tokens, undefined);
            else assert.ok(o.balance.paid_tokens >= 0, "a written-off period starts with no debt");
          }
          for (const account of Object.values(whole.state.accounts)) {
            assert.ok(
              account.trial_used_tokens <= account.allowance_tokens + (account.period?.carried_tokens ?? 0),
            );
            // Never more paid tokens than were bought, whatever was written off and voided
            assert.ok(account.paid_used_tokens >= 0);
            assert.ok((account.overage_written_off_tokens ?? 0) >= 0);
          }
          const { state, outputs } = applyInCuts(records, cuts, cfg);
          assert.deepEqual(state, whole.state);
          assert.deepEqual(outputs, whole.outputs);
        },
      ),
      { numRuns: 150 },
    );
  });
});
