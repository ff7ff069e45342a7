import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { Recomputer, type TopicMessage } from "../../pipeline/audit/recompute.ts";
import { creditAuthorization, SIGNATURE_HEADER, signRecord } from "../../pipeline/auth/signature.ts";
import { resumableEvents } from "../../pipeline/core/budget.ts";
import {
  type AccountState,
  applyBatch,
  applyRecord,
  budgetStateOf,
  defaultBillingConfig,
  emptyState,
  MAX_TOKEN_COUNTER,
} from "../../pipeline/core/index.ts";
import { outputBase } from "../../pipeline/core/output-base.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import { accountKeyOf, decodeRecord, INT64_MAX, type InputRecord, type Output } from "../../schemas/index.ts";
import { cloneState } from "../support/clone-state.ts";
import {
  APP_IDS,
  accountOf,
  at,
  config,
  credit,
  HUGE_PRICE_BOOK,
  ofKind,
  PLATFORM_IDS,
  run,
  session,
  tokens,
  usage,
} from "./builders.ts";

const APP_KEY = "app:app_456:enduser_789";
const MINUTE = 60_000;

function rejection(outputs: readonly Output[]) {
  const rejected = ofKind(outputs, "rejected");
  assert.equal(
    rejected.length,
    1,
    `expected one rejection, got ${JSON.stringify(outputs.map((o) => o.kind))}`,
  );
  assert.equal(outputs.length, 1, "a rejected record has no other output");
  return rejected[0]!;
}

/** An account after one usage record, for hand-set counters near their limits. */
function accountAfter(records: readonly InputRecord[], cfg = defaultBillingConfig): AccountState {
  return cloneState(accountOf(run(records, cfg).state));
}

describe("event time bound against the log time (RECORD_TIME_SKEW)", () => {
  const logMs = Date.parse(at(0));

  test("Given a record dated 9999, When applied with its log time, Then it is rejected and later records still bill", () => {
    const far = usage({ record_id: "u-far", occurred_at: "9999-12-31T00:00:00Z" });
    const next = usage({ record_id: "u-next", occurred_at: at(1) });
    const { state, outputs } = applyBatch(
      emptyState(),
      [
        { record: far, logTimeMs: logMs },
        { record: next, logTimeMs: logMs + MINUTE },
      ],
      defaultBillingConfig,
    );
    const rejected = ofKind(outputs, "rejected");
    assert.equal(rejected.length, 1);
    assert.equal(rejected[0]!.code, "RECORD_TIME_SKEW");
    assert.match(rejected[0]!.reason, /9999-12-31T00:00:00Z/);
    assert.match(rejected[0]!.reason, new RegExp(new Date(logMs).toISOString()));
    assert.match(rejected[0]!.reason, /900s ahead/);
    assert.equal(ofKind(outputs, "usage_outcome").length, 1);
    assert.equal(accountOf(state).tokens_used, 200);
  });

  test("Given Kafka's no-timestamp (-1) or any negative log time, Then the record is refused as skew, never applied unchecked", () => {
    for (const logTimeMs of [-1, -86_400_000]) {
      const { outputs, state } = applyBatch(
        emptyState(),
        [{ record: usage({ record_id: "u-none", occurred_at: "2100-01-01T00:00:00Z" }), logTimeMs }],
        defaultBillingConfig,
      );
      const refused = rejection(outputs);
      assert.equal(refused.code, "RECORD_TIME_SKEW");
      assert.match(refused.reason, new RegExp(`Kafka timestamp is ${logTimeMs} \\(none\\)`));
      assert.deepEqual(state.accounts, {});
    }
  });

  test("Given the bounds, Then 900 s ahead and 35 days behind pass and one more millisecond is rejected", () => {
    const cases: [number, boolean][] = [
      [900_000, true],
      [900_001, false],
      [-35 * 86_400_000, true],
      [-35 * 86_400_000 - 1, false],
    ];
    for (const [offsetMs, ok] of cases) {
      const record = usage({ occurred_at: new Date(logMs + offsetMs).toISOString() });
      const { state, outputs } = applyBatch(
        emptyState(),
        [{ record, logTimeMs: logMs }],
        defaultBillingConfig,
      );
      assert.equal(ofKind(outputs, "usage_outcome").length, ok ? 1 : 0, `offset ${offsetMs}`);
      if (!ok) {
        const rejected = rejection(outputs);
        assert.equal(rejected.code, "RECORD_TIME_SKEW");
        assert.match(rejected.reason, offsetMs > 0 ? /max_ahead_seconds/ : /3024000s behind/);
        assert.deepEqual(state.accounts, {}, "no account created");
      }
    }
  });

  test("Given a configured bound, Then it is the one applied", () => {
    const cfg = config({ event_time: { max_ahead_seconds: 60, max_behind_seconds: 3600 } });
    const record = usage({ occurred_at: new Date(logMs + 61_000).toISOString() });
    const { outputs } = applyBatch(emptyState(), [{ record, logTimeMs: logMs }], cfg);
    assert.equal(rejection(outputs).code, "RECORD_TIME_SKEW");
  });

  test("Given a skewed re-send of an applied id, Then it is rejected as skew (checked before dedupe), state unchanged", () => {
    const first = applyBatch(
      emptyState(),
      [{ record: usage(), logTimeMs: Date.parse(usage().occurred_at) }],
      defaultBillingConfig,
    );
    const again = applyBatch(
      first.state,
      [{ record: usage(), logTimeMs: logMs + 40 * 86_400_000 }],
      defaultBillingConfig,
    );
    assert.equal(rejection(again.outputs).code, "RECORD_TIME_SKEW");
    assert.deepEqual(again.state.accounts[APP_KEY], first.state.accounts[APP_KEY]);
  });

  test("Given no log time (compute on a file), Then there is no skew check (the storable range still holds)", () => {
    const { outputs } = run([usage({ occurred_at: "2106-02-07T06:28:15Z" })]);
    assert.equal(ofKind(outputs, "usage_outcome").length, 1);
  });

  test("Given the audit reads messages with their log timestamps, Then it rejects what the processor rejects", () => {
    const recomputer = new Recomputer(defaultBillingConfig, 65_536);
    const message = (record: InputRecord, offset: number, timestamp: number): TopicMessage => ({
      offset: String(offset),
      key: Buffer.from(accountKeyOf(record)),
      value: Buffer.from(JSON.stringify(record, (_k, v) => (typeof v === "bigint" ? v.toString() : v))),
      timestamp: String(timestamp),
    });
    recomputer.add(0, message(usage({ record_id: "u-far", occurred_at: "9999-12-31T00:00:00Z" }), 0, logMs));
    recomputer.add(0, message(usage({ record_id: "u-ok", occurred_at: at(1) }), 1, logMs + MINUTE));
    const expected = recomputer.finish();
    assert.equal(expected.counts.rejected, 1);
    assert.equal(expected.counts.usage_outcomes, 1);
    assert.equal(accountOf(expected.state).dedupe.max_event_ms, Date.parse(at(1)));
  });
});

describe("event times the analytics store can hold (RECORD_OUT_OF_RANGE)", () => {
  // A price in force since 1900, so that only the time range refuses (the default book starts in 2024).
  const since1900 = config({
    price_book: {
      entries: [{ ...HUGE_PRICE_BOOK.entries[0]!, effective_from: "1900-01-01T00:00:00Z" }],
    },
  });

  test("Given a record before 1970 or after 2106-02-07T06:28:15.999Z, Then it is refused and changes nothing; the bounds themselves apply", () => {
    const cases: [string, boolean][] = [
      ["1969-12-31T23:59:59.999Z", false],
      ["1970-01-01T00:00:00.000Z", true],
      ["1970-01-01T00:59:59.999+01:00", false],
      ["2106-02-07T06:28:15.999Z", true],
      ["2106-02-07T06:28:16.000Z", false],
      ["2299-12-31T00:00:00Z", false],
    ];
    for (const [time, applies] of cases) {
      const { outputs, state } = run(
        [
          usage({ record_id: "t", occurred_at: time, ...tokens(10) }),
          credit({ record_id: "c", occurred_at: time, tokens: 5 }),
          session({ record_id: "s", occurred_at: time }),
        ],
        since1900,
      );
      const refused = ofKind(outputs, "rejected");
      if (applies) assert.equal(refused.length, 0, time);
      else {
        assert.deepEqual(
          refused.map((r) => r.code),
          ["RECORD_OUT_OF_RANGE", "RECORD_OUT_OF_RANGE", "RECORD_OUT_OF_RANGE"],
          time,
        );
        assert.match(
          refused[0]!.reason,
          /occurred_at .* is outside 1970-01-01T00:00:00.000Z\.\.2106-02-07T06:28:15.999Z/,
        );
        assert.deepEqual(state.accounts, {}, "no account made");
      }
    }
  });

  test("Given a usage record whose started_at or ended_at is out of range, Then it is refused (they become the session's times)", () => {
    const outside = [
      "1969-07-20T20:17:00Z",
      "1970-01-01T00:59:59.999+01:00",
      "2106-02-07T06:28:16Z",
      "2200-01-01T00:00:00Z",
    ];
    const inside = [
      "1970-01-01T01:00:00+01:00",
      "1971-01-01T00:00:00+23:59",
      "2105-12-31T23:59:59Z",
      "2106-02-07T06:28:15Z",
    ];
    for (const field of ["started_at", "ended_at"] as const) {
      for (const time of outside) {
        const outputs = run([usage({ occurred_at: at(0), [field]: time, ...tokens(10) })], since1900).outputs;
        assert.equal(rejection(outputs).reason.startsWith(`${field} ${time} is outside`), true, time);
      }
      for (const time of inside) {
        const outputs = run([usage({ occurred_at: at(0), [field]: time, ...tokens(10) })], since1900).outputs;
        assert.equal(ofKind(outputs, "rejected").length, 0, `${field} ${time}`);
      }
    }
  });
});

describe("audit: records on another partition than their key's", () => {
  test("Given partition counts, Then a message off its key's murmur2 partition is skipped and counted", () => {
    const record = usage();
    const key = accountKeyOf(record);
    const right = partitionForKey(key, 6);
    const wrong = (right + 1) % 6;
    const message = (offset: number): TopicMessage => ({
      offset: String(offset),
      key: Buffer.from(key),
      value: Buffer.from(JSON.stringify({ ...record, record_id: `u-${offset}` })),
    });
    const checked = new Recomputer(defaultBillingConfig, 65_536, { partitionCounts: [6] });
    checked.add(wrong, message(0));
    checked.add(right, message(1));
    const result = checked.finish();
    assert.equal(result.counts.skipped_wrong_partition, 1);
    assert.equal(result.counts.records, 1);
    assert.equal(accountOf(result.state).tokens_used, 200);

    const unchecked = new Recomputer(defaultBillingConfig, 65_536);
    unchecked.add(wrong, message(0));
    assert.equal(unchecked.finish().counts.skipped_wrong_partition, 0);
  });
});

describe("audit: credit records without the operator's signature", () => {
  test("Given the operator secret, Then an unsigned or tampered credit is skipped as the processor dead-letters it", () => {
    const secret = "s".repeat(32);
    const record = credit({ record_id: "c-1", tokens: 5_000 });
    const key = accountKeyOf(record);
    const value = JSON.stringify(record, (_k, v) => (typeof v === "bigint" ? v.toString() : v));
    const signed = signRecord(secret, value);
    const message = (offset: number, bytes: string, header?: string): TopicMessage => ({
      offset: String(offset),
      key: Buffer.from(key),
      value: Buffer.from(bytes),
      ...(header === undefined ? {} : { headers: { [SIGNATURE_HEADER]: Buffer.from(header) } }),
    });
    const policy = creditAuthorization({ AGENTMETER_OPERATOR_SECRET: secret });
    const audit = new Recomputer(defaultBillingConfig, 65_536, { creditPolicy: policy });
    audit.add(0, message(0, value));
    audit.add(0, message(1, value.replace('"c-1"', '"c-2"'), signed));
    audit.add(0, message(2, value, signed));
    const result = audit.finish();
    assert.equal(result.counts.skipped_unauthorized, 2);
    assert.equal(result.counts.records, 1);
    assert.equal(accountOf(result.state, key).credited_tokens, 5_000);
  });
});

describe("numbers within their storage types", () => {
  const creditJson = (amount: unknown) =>
    JSON.stringify({
      type: "credit",
      record_id: "c",
      kind: "top_up",
      ...PLATFORM_IDS,
      tokens: 1,
      amount_micros: amount,
      occurred_at: "2025-07-28T10:00:00Z",
    });

  test("Given amount_micros at int64's maximum, Then it is accepted; one more is rejected with the rule", () => {
    const ok = decodeRecord(creditJson(INT64_MAX.toString()), { maxBytes: 10_000 });
    assert.ok(ok.ok && ok.record.type === "credit");
    assert.equal(ok.ok && ok.record.type === "credit" && ok.record.amount_micros, INT64_MAX);
    const over = decodeRecord(creditJson((INT64_MAX + 1n).toString()), { maxBytes: 10_000 });
    assert.ok(!over.ok);
    assert.equal(over.code, "RECORD_INVALID");
    assert.equal(
      over.reason,
      "amount_micros: must be a non-negative integer of at most 30 digits and at most 9223372036854775807 (int64): a decimal string, or a JSON number up to 9007199254740991",
    );
  });

  test("Given a 32-digit amount_micros, Then one message states the limits", () => {
    const result = decodeRecord(creditJson("1".repeat(32)), { maxBytes: 10_000 });
    assert.ok(!result.ok);
    assert.equal(result.reason.split("; ").length, 1);
    assert.match(result.reason, /^amount_micros: .*at most 30 digits and at most 9223372036854775807/);
  });

  test("Given amount_micros as an unsafe or fractional JSON number, Then one message each", () => {
    for (const amount of [2 ** 60, 1.5, -1]) {
      const result = decodeRecord(creditJson(amount), { maxBytes: 10_000 });
      assert.ok(!result.ok, String(amount));
      assert.equal(result.reason.split("; ").length, 1, result.reason);
      assert.match(result.reason, /^amount_micros: must be a non-negative integer/);
    }
  });

  test("Given an oversized token count, Then one message for the field, stating the limit", () => {
    const text = JSON.stringify({
      ...usage(),
      agent_usage: { A: { prompt_tokens: 1e16, completion_tokens: -1 } },
    });
    const result = decodeRecord(text, { maxBytes: 10_000 });
    assert.ok(!result.ok);
    assert.equal(
      result.reason,
      "agent_usage.A.prompt_tokens: must be an integer from 0 to 1000000000000; agent_usage.A.completion_tokens: must be an integer from 0 to 1000000000000",
    );
  });

  test("Given tokens_used 100 below 2^53-1, Then 100 more tokens apply and 101 are RECORD_OUT_OF_RANGE with no change", () => {
    const account = accountAfter([usage({ record_id: "u-0" })]);
    account.tokens_used = MAX_TOKEN_COUNTER - 100;
    const ok = applyRecord(
      account,
      usage({ record_id: "u-1", ...tokens(50, 50), occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.equal(ok.account?.tokens_used, MAX_TOKEN_COUNTER);
    const over = applyRecord(
      account,
      usage({ record_id: "u-2", ...tokens(51, 50), occurred_at: at(1) }),
      defaultBillingConfig,
    );
    const rejected = rejection(over.outputs);
    assert.equal(rejected.code, "RECORD_OUT_OF_RANGE");
    assert.match(rejected.reason, /tokens_used would be 9007199254740992, past 9007199254740991/);
    assert.equal(over.changed, false);
    assert.equal(over.account, account);
  });

  test("Given paid tokens used near 2^53-1, Then a record past it is rejected (every token counter is checked)", () => {
    const account = accountAfter([usage({ record_id: "u-0" })]);
    account.paid_used_tokens = MAX_TOKEN_COUNTER - 10;
    account.trial_used_tokens = account.allowance_tokens;
    const over = applyRecord(
      account,
      usage({ record_id: "u-1", ...tokens(11), occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.match(rejection(over.outputs).reason, /^paid_used_tokens would be/);
  });

  test("Given a chat's agent totals near 2^53-1, Then a record past them is rejected", () => {
    const account = accountAfter([usage({ record_id: "u-0" })]);
    account.chats["chat-1"]!.agents.Agent!.completion_tokens = MAX_TOKEN_COUNTER - 1;
    const over = applyRecord(
      account,
      usage({ record_id: "u-1", ...tokens(0, 2), occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.match(rejection(over.outputs).reason, /^chat agent Agent completion_tokens would be/);
    const otherChat = applyRecord(
      account,
      usage({ record_id: "u-2", chat_id: "chat-2", ...tokens(0, 2), occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.equal(otherChat.changed, true, "another chat's counters start at 0");
  });

  test("Given cost_micros at int64's maximum minus a record's cost, Then it applies; one micro more is rejected", () => {
    // 100 + 100 tokens of the default model at $30/M cost 6,000 micros.
    const account = accountAfter([usage({ record_id: "u-0" })]);
    account.cost_micros = INT64_MAX - 6_000n;
    const ok = applyRecord(account, usage({ record_id: "u-1", occurred_at: at(1) }), defaultBillingConfig);
    assert.equal(ok.account?.cost_micros, INT64_MAX);
    account.cost_micros += 1n;
    const over = applyRecord(account, usage({ record_id: "u-1", occurred_at: at(1) }), defaultBillingConfig);
    const rejected = rejection(over.outputs);
    assert.equal(rejected.code, "RECORD_OUT_OF_RANGE");
    assert.match(
      rejected.reason,
      /^cost_micros would be 9223372036854775808, past 9223372036854775807 \(int64/,
    );
    assert.equal(over.account, account);
  });

  test("Given billed micros or a chat's billed micros near int64's maximum, Then paid usage past it is rejected", () => {
    const paid = [
      credit({ record_id: "c-0", kind: "budget_set", tokens: 0 }),
      usage({ record_id: "u-0", occurred_at: at(1) }),
    ];
    const account = accountAfter(paid);
    account.billed_micros = INT64_MAX - 5_999n;
    let over = applyRecord(account, usage({ record_id: "u-1", occurred_at: at(2) }), defaultBillingConfig);
    assert.match(rejection(over.outputs).reason, /^billed_micros would be/);
    const again = accountAfter(paid);
    again.chats["chat-1"]!.billed_micros = INT64_MAX - 5_999n;
    over = applyRecord(again, usage({ record_id: "u-1", occurred_at: at(2) }), defaultBillingConfig);
    assert.match(rejection(over.outputs).reason, /^chat billed_micros would be/);
  });

  test("Given one record whose cost alone passes int64 on a new account, Then it is rejected and no account is created", () => {
    const agents = Object.fromEntries(
      Array.from({ length: 64 }, (_, i) => [`A${i}`, { prompt_tokens: 1e12, completion_tokens: 1e12 }]),
    );
    const { state, outputs } = run([usage({ agent_usage: agents })], config({ price_book: HUGE_PRICE_BOOK }));
    assert.equal(rejection(outputs).code, "RECORD_OUT_OF_RANGE");
    assert.deepEqual(state.accounts, {});
  });

  test("Given credited tokens and paid_amount_micros near their limits, Then credits past them are rejected", () => {
    const account = accountAfter([credit({ record_id: "c-0" })]);
    account.credited_tokens = MAX_TOKEN_COUNTER - account.allowance_tokens - 1_000;
    assert.equal(
      applyRecord(
        account,
        credit({ record_id: "c-1", tokens: 1_000, occurred_at: at(1) }),
        defaultBillingConfig,
      ).changed,
      true,
    );
    const tokensOver = applyRecord(
      account,
      credit({ record_id: "c-1", tokens: 1_001, occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.match(
      rejection(tokensOver.outputs).reason,
      /^allowance_tokens \+ credited_tokens would be 9007199254740992/,
    );
    const budgetOver = applyRecord(
      account,
      credit({ record_id: "c-1", kind: "budget_set", tokens: 11_001, occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.equal(rejection(budgetOver.outputs).code, "RECORD_OUT_OF_RANGE");

    const paying = accountAfter([credit({ record_id: "c-0" })]);
    paying.paid_amount_micros = INT64_MAX - 10n;
    const ok = applyRecord(
      paying,
      credit({ record_id: "c-1", amount_micros: "10", occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.equal(ok.account?.paid_amount_micros, INT64_MAX);
    const over = applyRecord(
      paying,
      credit({ record_id: "c-1", amount_micros: "11", occurred_at: at(1) }),
      defaultBillingConfig,
    );
    assert.match(rejection(over.outputs).reason, /^paid_amount_micros would be 9223372036854775808/);
  });
});

describe("an app has one creator (RECORD_CREATOR_MISMATCH)", () => {
  test("Given an end user account bound to its first record's creator, Then a record naming another is rejected", () => {
    const { state, outputs } = run([
      usage({ record_id: "u-1", mozaiks_user_id: "cre1" }),
      usage({ record_id: "u-2", mozaiks_user_id: "creX", occurred_at: at(1) }),
      credit({ record_id: "c-1", mozaiks_user_id: "creX", occurred_at: at(2) }),
      session({ record_id: "s-1", mozaiks_user_id: "creX", event: "finalize", occurred_at: at(3) }),
    ]);
    const rejected = ofKind(outputs, "rejected");
    assert.deepEqual(
      rejected.map((r) => [r.record_id, r.code]),
      [
        ["u-2", "RECORD_CREATOR_MISMATCH"],
        ["c-1", "RECORD_CREATOR_MISMATCH"],
        ["s-1", "RECORD_CREATOR_MISMATCH"],
      ],
    );
    assert.match(rejected[0]!.reason, /cre1.*creX/);
    const account = accountOf(state);
    assert.equal(account.mozaiks_user_id, "cre1");
    assert.equal(account.tokens_used, 200);
    assert.equal(account.dedupe.seen.has("u-2"), false);
    assert.ok(Object.hasOwn(account.chats, "chat-1"), "the rejected finalize closed nothing");
  });

  test("Given a creator pinned in the config, Then app and platform records naming another are rejected, even a first one", () => {
    const cfg = config({ apps: { app_456: { creator: "user_123" } } });
    const { state, outputs } = run(
      [
        usage({ record_id: "u-1", mozaiks_user_id: "intruder" }),
        usage({ record_id: "p-1", ...PLATFORM_IDS, mozaiks_user_id: "intruder" }),
        usage({ record_id: "u-2", occurred_at: at(1) }),
        usage({
          record_id: "u-3",
          enterprise_id: "other_app",
          mozaiks_user_id: "intruder",
          occurred_at: at(1),
        }),
      ],
      cfg,
    );
    assert.deepEqual(
      ofKind(outputs, "rejected").map((r) => [r.record_id, r.code]),
      [
        ["u-1", "RECORD_CREATOR_MISMATCH"],
        ["p-1", "RECORD_CREATOR_MISMATCH"],
      ],
    );
    assert.match(ofKind(outputs, "rejected")[0]!.reason, /billing config apps/);
    assert.equal(state.accounts["platform:intruder"], undefined);
    assert.equal(accountOf(state).mozaiks_user_id, APP_IDS.mozaiks_user_id);
    assert.equal(ofKind(outputs, "usage_outcome").length, 2);
  });

  test("Given unpinned_apps reject, Then an unlisted app's end-user records are refused, a pinned app's and platform records bill", () => {
    const cfg = config({ apps: { app_456: { creator: "user_123" } }, unpinned_apps: "reject" });
    const { state, outputs } = run(
      [
        usage({ record_id: "u-1" }),
        usage({ record_id: "x-1", enterprise_id: "other_app", mozaiks_user_id: "anyone" }),
        usage({ record_id: "p-1", ...PLATFORM_IDS, enterprise_id: "other_app", occurred_at: at(1) }),
      ],
      cfg,
    );
    assert.deepEqual(
      ofKind(outputs, "rejected").map((r) => [r.record_id, r.code]),
      [["x-1", "RECORD_CREATOR_MISMATCH"]],
    );
    assert.match(ofKind(outputs, "rejected")[0]!.reason, /no creator in the billing config/);
    assert.equal(ofKind(outputs, "usage_outcome").length, 2);
    assert.equal(accountOf(state).mozaiks_user_id, "user_123");
    // The default binds from the first record: the same unlisted app's record bills.
    const open = run(
      [usage({ record_id: "x-1", enterprise_id: "other_app", mozaiks_user_id: "anyone" })],
      config({}),
    );
    assert.equal(ofKind(open.outputs, "rejected").length, 0);
  });
});

describe("sessions", () => {
  test("Given a chat that is not open, When finalized, Then no session_summary (and no chat is created)", () => {
    const { state, outputs } = run([
      usage({ record_id: "u-1", chat_id: "chat-1" }),
      session({ record_id: "s-1", chat_id: "chat-9", event: "finalize", occurred_at: at(1) }),
      session({ record_id: "s-2", chat_id: "chat-1", event: "finalize", occurred_at: at(2) }),
      session({ record_id: "s-3", chat_id: "chat-1", event: "finalize", occurred_at: at(3) }),
    ]);
    assert.deepEqual(
      ofKind(outputs, "session_summary").map((s) => [s.record_id, s.chat_id, s.total_tokens]),
      [["s-2", "chat-1", 200]],
    );
    assert.equal(ofKind(outputs, "session_event").length, 3);
    assert.deepEqual(accountOf(state).chats, {});
  });

  test("Given max_open_chats, When a record opens one more, Then the oldest open chat is closed first as a finalize would", () => {
    const cfg = config({ max_open_chats: 3 });
    const { state, outputs } = run(
      [
        usage({ record_id: "u-b", chat_id: "chat-b", session_id: "sess-b", occurred_at: at(1) }),
        usage({ record_id: "u-a", chat_id: "chat-a", session_id: "sess-a", occurred_at: at(1) }),
        session({ record_id: "s-c", chat_id: "chat-c", event: "pause", occurred_at: at(2) }),
        usage({ record_id: "u-b2", chat_id: "chat-b", session_id: "sess-b", occurred_at: at(5) }),
        usage({ record_id: "u-d", chat_id: "chat-d", occurred_at: at(6) }),
        session({ record_id: "s-e", chat_id: "chat-e", event: "start", occurred_at: at(7) }),
      ],
      cfg,
    );
    const summaries = ofKind(outputs, "session_summary");
    // chat-a and chat-b both started at minute 1, chat-b then moved on: chat-a is oldest; then chat-c.
    assert.deepEqual(
      summaries.map((s) => [s.record_id, s.chat_id, s.ended_at, s.total_tokens]),
      [
        ["u-d", "chat-a", at(1), 200],
        ["s-e", "chat-c", at(2), 0],
      ],
    );
    const closing = ofKind(outputs, "session_event").filter((e) => e.chat_id === "chat-a");
    assert.deepEqual(
      closing.map((e) => [e.record_id, e.event, e.chat_paused, e.can_resume]),
      [["u-d", "finalize", false, false]],
    );
    // A paused chat closed at the cap says so, as a finalize record of it would.
    const pausedClosing = ofKind(outputs, "session_event").filter(
      (e) => e.chat_id === "chat-c" && e.event === "finalize",
    );
    assert.deepEqual(
      pausedClosing.map((e) => [e.record_id, e.chat_paused, e.pause_reason, e.can_resume]),
      [["s-e", true, "user_requested", true]],
    );
    const finalized = run(
      [
        session({ record_id: "s-c", chat_id: "chat-c", event: "pause", occurred_at: at(2) }),
        session({ record_id: "f-c", chat_id: "chat-c", event: "finalize", occurred_at: at(7) }),
      ],
      cfg,
    );
    const byRecord = ofKind(finalized.outputs, "session_event").find((e) => e.record_id === "f-c")!;
    assert.deepEqual(
      [byRecord.chat_paused, byRecord.pause_reason, byRecord.can_resume],
      [true, "user_requested", true],
    );
    // The closing outputs come before the record's own outcome.
    const kinds = outputs.filter((o) => o.record_id === "u-d").map((o) => o.kind);
    assert.deepEqual(kinds.slice(0, 3), ["session_event", "session_summary", "usage_outcome"]);
    const account = accountOf(state, APP_KEY);
    assert.deepEqual(Object.keys(account.chats).sort(), ["chat-b", "chat-d", "chat-e"]);
    assert.equal(account.tokens_used, 800, "billing continues");
    assert.deepEqual(budgetStateOf(account).paused_chats, []);
  });

  test("Given an account past a lowered cap, When a chat opens, Then it is brought under the cap at once", () => {
    const many = Array.from({ length: 6 }, (_, i) =>
      session({ record_id: `s-${i}`, chat_id: `chat-${i}`, event: "start", occurred_at: at(i) }),
    );
    const account = accountOf(run(many).state);
    const result = applyRecord(
      account,
      session({ record_id: "s-new", chat_id: "chat-new", occurred_at: at(10) }),
      config({ max_open_chats: 2 }),
    );
    assert.deepEqual(
      ofKind(result.outputs, "session_summary").map((s) => s.chat_id),
      ["chat-0", "chat-1", "chat-2", "chat-3", "chat-4"],
    );
    assert.deepEqual(Object.keys(result.account!.chats).sort(), ["chat-5", "chat-new"]);
  });

  test("Given batches cut anywhere, Then closing at the cap gives the same state and outputs", () => {
    const cfg = config({ max_open_chats: 2 });
    const records = Array.from({ length: 8 }, (_, i) =>
      usage({ record_id: `u-${i}`, chat_id: `chat-${i % 4}`, occurred_at: at(i) }),
    );
    const whole = run(records, cfg);
    let state = emptyState();
    const outputs: Output[] = [];
    for (const record of records) {
      const step = applyBatch(state, [{ record }], cfg);
      state = step.state;
      outputs.push(...step.outputs);
    }
    assert.deepEqual(state, whole.state);
    assert.deepEqual(outputs, whole.outputs);
  });
});

describe("paused chats: per-record work independent of the number of open chats", () => {
  test("Given the account's can-continue did not change, Then resumableEvents does not enumerate the chats", () => {
    const account = accountAfter([usage({ record_id: "u-0" })]);
    let enumerations = 0;
    account.chats = new Proxy(account.chats, {
      ownKeys(target) {
        enumerations++;
        return Reflect.ownKeys(target);
      },
    });
    const base = outputBase(usage());
    assert.deepEqual(resumableEvents(account, base, true), []);
    assert.equal(enumerations, 0);
  });

  test("Given exhausted paused chats, When a credit makes the account positive, Then each becomes resumable, in chat id order", () => {
    const cfg = config({ app_trial_tokens: { default: 100 } });
    const { outputs, state } = run(
      [
        usage({ record_id: "u-1", chat_id: "chat-2", occurred_at: at(0) }),
        session({ record_id: "s-1", chat_id: "chat-1", event: "resume", occurred_at: at(1) }),
        usage({ record_id: "u-2", chat_id: "chat-3", occurred_at: at(2) }),
        credit({ record_id: "c-1", tokens: 10_000, occurred_at: at(3) }),
      ],
      cfg,
    );
    assert.deepEqual(
      ofKind(outputs, "budget_event")
        .filter((e) => e.event === "resumable")
        .map((e) => e.event === "resumable" && e.chat_id),
      ["chat-1", "chat-2", "chat-3"],
    );
    assert.ok(budgetStateOf(accountOf(state)).paused_chats.every((chat) => chat.can_resume));
  });
});

describe("agent names that are JavaScript object properties", () => {
  for (const name of ["__proto__", "constructor", "prototype"]) {
    test(`Given an agent named ${name}, Then the record is RECORD_INVALID naming the field`, () => {
      const text = `{"type":"usage","record_id":"u","level":"platform","enterprise_id":"a","mozaiks_user_id":"m","workflow_type":"w","workflow_name":"w","session_id":"s","chat_id":"c","occurred_at":"2025-07-28T10:00:00Z","agent_usage":{"A":{"prompt_tokens":1,"completion_tokens":1},"${name}":{"prompt_tokens":1,"completion_tokens":1}}}`;
      const result = decodeRecord(text, { maxBytes: 10_000 });
      assert.ok(!result.ok);
      assert.equal(result.code, "RECORD_INVALID");
      assert.match(result.reason, new RegExp(`^agent_usage\\.${name}: agent name ${name} is reserved`));
    });
  }
});

describe("dedupe cap", () => {
  test("Given the cap forgets ids inside the horizon, Then they are counted in forgotten_in_horizon", () => {
    const cfg = config({ dedupe: { max_entries: 100 } });
    const records = Array.from({ length: 101 }, (_, i) => usage({ record_id: `r-${i}`, occurred_at: at(i) }));
    const account = accountOf(run(records, cfg).state);
    assert.equal(account.dedupe.forgotten_in_horizon, 11);
    assert.equal(accountOf(run(records.slice(0, 100), cfg).state).dedupe.forgotten_in_horizon, 0);
  });

  test("Given the cap forgot ids inside the horizon, When one of them is re-sent, Then it is refused as too late, never billed again; a new record after the forgotten ones is billed", () => {
    const cfg = config({ dedupe: { max_entries: 100 } });
    const records = Array.from({ length: 101 }, (_, i) => usage({ record_id: `r-${i}`, occurred_at: at(i) }));
    const first = run(records, cfg);
    // r-0 .. r-10 are forgotten (down to 90): through r-10's time
    assert.equal(accountOf(first.state).dedupe.forgotten_through_ms, Date.parse(at(10)));
    const resent = usage({ record_id: "r-5", occurred_at: at(5) });
    const later = usage({ record_id: "r-late", occurred_at: at(11) });
    const again = applyBatch(first.state, [{ record: resent }, { record: later }], cfg);
    const [rejected] = ofKind(again.outputs, "rejected");
    assert.equal(rejected?.record_id, "r-5");
    assert.equal(rejected?.code, "RECORD_TOO_LATE");
    assert.match(rejected?.reason ?? "", /dedupe cap \(dedupe\.max_entries 100\)/);
    assert.deepEqual(
      ofKind(again.outputs, "usage_outcome").map((o) => o.record_id),
      ["r-late"],
    );
    assert.equal(
      accountOf(again.state).tokens_used,
      accountOf(first.state).tokens_used + ofKind(again.outputs, "usage_outcome")[0]!.tokens_used,
    );
  });

  test("Given ids past the horizon, Then the sweep forgets them without counting", () => {
    const cfg = config({ dedupe: { max_entries: 100, horizon_seconds: 3600 } });
    const records = Array.from({ length: 300 }, (_, i) => usage({ record_id: `r-${i}`, occurred_at: at(i) }));
    assert.equal(accountOf(run(records, cfg).state).dedupe.forgotten_in_horizon, 0);
  });

  test("Given a stored state without the field, Then the count starts from it", () => {
    const cfg = config({ dedupe: { max_entries: 100 } });
    const account = accountAfter([usage({ record_id: "r-0" })], cfg);
    delete account.dedupe.forgotten_in_horizon;
    const records = Array.from({ length: 100 }, (_, i) =>
      usage({ record_id: `r-${i + 1}`, occurred_at: at(i + 1) }),
    );
    const result = applyBatch(
      { accounts: { [APP_KEY]: account } },
      records.map((record) => ({ record })),
      cfg,
    );
    assert.equal(accountOf(result.state).dedupe.forgotten_in_horizon, 11);
  });
});
