import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { applyBatch, defaultBillingConfig, emptyState } from "../../pipeline/core/index.ts";
import { accountOf, at, config, credit, ofKind, run, session, tokens, usage, voidOf } from "./builders.ts";

const DAY = 24 * 60;

describe("dedupe", () => {
  test("Given a record seen before, When it comes again (also as another runtime record type), Then it is ignored", () => {
    const { outputs, state } = run([
      usage({ record_id: "r-1", ...tokens(100) }),
      usage({ record_id: "r-1", ...tokens(100) }),
      session({ record_id: "r-1" }),
      credit({ record_id: "c-1", tokens: 5 }),
      credit({ record_id: "c-1", tokens: 5 }),
    ]);
    assert.deepEqual(
      outputs.map((o) => o.kind),
      ["usage_outcome", "duplicate_ignored", "duplicate_ignored", "credit_applied", "duplicate_ignored"],
    );
    assert.equal(accountOf(state).tokens_used, 100);
  });

  describe("operator records (credits, voids, refunds) have ids of their own", () => {
    test("Given a usage record with a payment's id, When the payment's top-up comes, Then it is applied (not a duplicate), and only its own re-send is ignored", () => {
      const { outputs, state } = run([
        credit({ record_id: "budget", kind: "budget_set", tokens: 0, occurred_at: at(0) }),
        usage({ record_id: "pay-1", ...tokens(100), occurred_at: at(1) }),
        credit({ record_id: "pay-1", tokens: 1_000, amount_micros: "1000000", occurred_at: at(2) }),
        credit({ record_id: "pay-1", tokens: 1_000, amount_micros: "1000000", occurred_at: at(2) }),
        usage({ record_id: "pay-1", ...tokens(100), occurred_at: at(1) }),
      ]);
      assert.deepEqual(
        outputs.filter((o) => o.record_id === "pay-1" && o.kind !== "budget_event").map((o) => o.kind),
        ["usage_outcome", "credit_applied", "duplicate_ignored", "duplicate_ignored"],
      );
      const account = accountOf(state);
      assert.equal(account.paid_amount_micros, 1_000_000n);
      assert.equal(account.tokens_used, 100);
    });

    test("Given a top-up, When a usage record carries its id, Then the usage is billed (not a duplicate)", () => {
      const { outputs, state } = run([
        credit({ record_id: "x-1", tokens: 1_000, occurred_at: at(0) }),
        usage({ record_id: "x-1", ...tokens(100), occurred_at: at(1) }),
      ]);
      assert.deepEqual(
        outputs.filter((o) => o.kind !== "budget_event").map((o) => o.kind),
        ["credit_applied", "usage_outcome"],
      );
      assert.equal(accountOf(state).tokens_used, 100);
    });

    test("Given a void that carries its target's id, Then it applies (before, the usage record's id hid it)", () => {
      const { outputs } = run([
        usage({ record_id: "u-9", ...tokens(100), occurred_at: at(1) }),
        voidOf("u-9", { record_id: "u-9" }),
      ]);
      assert.deepEqual(
        ofKind(outputs, "adjustment").map((a) => [a.adjustment, a.target_record_id]),
        [["void", "u-9"]],
      );
    });

    test("Given an account stored before the split (an operator id remembered as it is), When that credit is re-sent, Then it is still ignored", () => {
      const first = run([credit({ record_id: "c-7", tokens: 500, occurred_at: at(0) })]);
      const seen = accountOf(first.state).dedupe.seen;
      assert.ok(seen.has("op/c-7") && !seen.has("c-7"));
      // What a stored account document of an earlier version holds: the id without its operator prefix.
      const at0 = seen.get("op/c-7")!;
      seen.delete("op/c-7");
      seen.set("c-7", at0);
      delete accountOf(first.state).dedupe.plain_operator_ids_through_ms;
      const again = applyBatch(
        first.state,
        [{ record: credit({ record_id: "c-7", tokens: 500, occurred_at: at(0) }) }],
        defaultBillingConfig,
      );
      assert.deepEqual(
        again.outputs.map((o) => o.kind),
        ["duplicate_ignored"],
      );
      assert.deepEqual(accountOf(again.state), accountOf(first.state));
    });

    test("Given corrections turned off (no usage memo), When a top-up carries a usage record's id, Then it is applied, and its re-send is ignored", () => {
      const cfg = config({ corrections: { window_seconds: 0 } });
      const { outputs, state } = run(
        [
          usage({ record_id: "7", ...tokens(100), occurred_at: at(1) }),
          credit({ record_id: "7", tokens: 1_000, amount_micros: "1000000", occurred_at: at(2) }),
          credit({ record_id: "7", tokens: 1_000, amount_micros: "1000000", occurred_at: at(2) }),
        ],
        cfg,
      );
      assert.deepEqual(
        outputs.filter((o) => o.kind !== "budget_event").map((o) => o.kind),
        ["usage_outcome", "credit_applied", "duplicate_ignored"],
      );
      assert.equal(accountOf(state).paid_amount_micros, 1_000_000n);
    });

    test("Given an account stored before the split, When this version first remembers a record of it, Then only the ids before that mark may hide an operator record", () => {
      const cfg = config({ corrections: { window_seconds: 0 } });
      const first = run([credit({ record_id: "c-7", tokens: 500, occurred_at: at(0) })], cfg);
      const dedupe = accountOf(first.state).dedupe;
      dedupe.seen.set("c-7", dedupe.seen.get("op/c-7")!);
      dedupe.seen.delete("op/c-7");
      delete dedupe.plain_operator_ids_through_ms;
      const later = applyBatch(
        first.state,
        [
          usage({ record_id: "u-1", ...tokens(10), occurred_at: at(5) }),
          credit({ record_id: "u-1", tokens: 300, occurred_at: at(6) }),
          credit({ record_id: "c-7", tokens: 500, occurred_at: at(0) }),
        ].map((record) => ({ record })),
        cfg,
      );
      assert.deepEqual(
        later.outputs.filter((o) => o.kind !== "budget_event").map((o) => [o.kind, o.record_id]),
        [
          ["usage_outcome", "u-1"],
          ["credit_applied", "u-1"],
          ["duplicate_ignored", "c-7"],
        ],
      );
      const account = accountOf(later.state);
      assert.equal(account.dedupe.plain_operator_ids_through_ms, Date.parse(at(0)));
      assert.equal(account.credited_tokens, 800);
    });
  });
  test("Given a duplicate 6 days later in event time, Then it is still ignored (7-day horizon)", () => {
    const { outputs } = run([
      usage({ record_id: "r-1", occurred_at: at(0) }),
      usage({ record_id: "r-2", occurred_at: at(6 * DAY) }),
      usage({ record_id: "r-1", occurred_at: at(0) }),
    ]);
    assert.equal(outputs.at(-1)?.kind, "duplicate_ignored");
  });
  test("Given a record 7 days or more older than the account's newest event, Then it is rejected RECORD_TOO_LATE", () => {
    const { outputs, state } = run([
      usage({ record_id: "r-1", occurred_at: at(7 * DAY) }),
      usage({ record_id: "r-0", occurred_at: at(0) }),
      usage({ record_id: "r-1", occurred_at: at(7 * DAY) }),
      usage({ record_id: "r-3", occurred_at: at(1) }),
    ]);
    assert.deepEqual(
      outputs.map((o) => (o.kind === "rejected" ? o.code : o.kind)),
      ["usage_outcome", "RECORD_TOO_LATE", "duplicate_ignored", "usage_outcome"],
    );
    assert.equal(accountOf(state).tokens_used, 400);
  });
  test("Given a 1-hour horizon, When ids age past it, Then they are swept and the document stays small", () => {
    const cfg = config({ dedupe: { horizon_seconds: 3600 } });
    const records = Array.from({ length: 300 }, (_, i) => usage({ record_id: `r-${i}`, occurred_at: at(i) }));
    const account = accountOf(run(records, cfg).state);
    assert.ok(account.dedupe.count <= 60 + 60 / 16 + 1, `kept ${account.dedupe.count}`);
    assert.equal(account.dedupe.count, account.dedupe.seen.size);
  });
  test("Given the entry cap, When exceeded, Then the oldest ids are forgotten first, down to 90%", () => {
    const cfg = config({ dedupe: { max_entries: 100 } });
    const records = Array.from({ length: 101 }, (_, i) => usage({ record_id: `r-${i}`, occurred_at: at(i) }));
    const account = accountOf(run(records, cfg).state);
    assert.equal(account.dedupe.count, 90);
    assert.equal(account.dedupe.seen.has("r-10"), false);
    assert.equal(account.dedupe.seen.has("r-11"), true);
  });
  test("Given a record id like constructor, Then it is not mistaken for seen (prototype keys)", () => {
    const { outputs } = run([
      usage({ record_id: "constructor" }),
      usage({ record_id: "toString", occurred_at: at(1) }),
    ]);
    assert.equal(ofKind(outputs, "usage_outcome").length, 2);
  });
  test("Given one batch, When it is applied again to its own result, Then state is unchanged and all are duplicates", () => {
    const batch = [usage({ record_id: "r-1" }), credit({ record_id: "c-1", occurred_at: at(1) })].map(
      (record) => ({
        record,
      }),
    );
    const once = applyBatch(emptyState(), batch, config());
    const twice = applyBatch(once.state, batch, config());
    assert.deepEqual(twice.state, once.state);
    assert.deepEqual(
      twice.outputs.map((o) => o.kind),
      ["duplicate_ignored", "duplicate_ignored"],
    );
  });
});
