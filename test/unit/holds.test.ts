import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  type AccountState,
  applyBatch,
  type BillingState,
  budgetStateOf,
  defaultBillingConfig,
  earliestHoldExpiry,
  emptyState,
  heldTokens,
  holdAvailableTokens,
  type SequencedTopicOutput,
} from "../../pipeline/core/index.ts";
import {
  accountKeyOf,
  budgetStateSchema,
  decodeRecord,
  decodeTopicRecord,
  type HoldDecision,
  type HoldRecord,
  holdRecordSchema,
  type InputRecord,
  isAgentmeterError,
  type Output,
  parseTickKey,
  type ReleaseRecord,
  releaseRecordSchema,
  type TickRecord,
  type TopicOutput,
  type TopicRecord,
  tickKeyFor,
  tickKeyOf,
  tickRecordSchema,
} from "../../schemas/index.ts";
import { renderRecordsDoc } from "../../scripts/records-doc.ts";
import {
  APP_IDS,
  accountOf,
  at,
  budgetEvents,
  config,
  credit,
  ofKind,
  PLATFORM_IDS,
  tokens,
  usage,
} from "./builders.ts";

const APP_KEY = "app:app_456:enduser_789";

function hold(fields: Partial<HoldRecord> = {}): HoldRecord {
  return holdRecordSchema.parse({
    type: "hold",
    record_id: `h-${fields.hold_id ?? "1"}`,
    ...APP_IDS,
    chat_id: "chat-1",
    hold_id: "1",
    tokens: 1_000,
    occurred_at: at(0),
    expires_at: at(10),
    ...fields,
  });
}

function release(fields: Partial<ReleaseRecord> = {}): ReleaseRecord {
  return releaseRecordSchema.parse({
    type: "release",
    record_id: `r-${fields.hold_id ?? "1"}`,
    ...APP_IDS,
    hold_id: "1",
    occurred_at: at(1),
    ...fields,
  });
}

function tick(minutes: number, fields: Partial<TickRecord> = {}): TickRecord {
  return tickRecordSchema.parse({
    type: "tick",
    record_id: `tick-${minutes}`,
    partition: 0,
    occurred_at: at(minutes),
    ...fields,
  });
}

function runTopic(records: readonly TopicRecord[], cfg = defaultBillingConfig, state = emptyState()) {
  return applyBatch(
    state,
    records.map((record, seq) => ({ record, seq })),
    cfg,
  );
}

function decisions<T extends TopicOutput>(outputs: readonly T[]): Extract<T, HoldDecision>[] {
  return outputs.filter((output): output is Extract<T, HoldDecision> => output.kind === "hold_decision");
}

function accountOutputs(outputs: readonly TopicOutput[]): Output[] {
  return outputs.filter((output): output is Output => output.kind !== "tick_rejected");
}

/** An app end user with 10,000 trial tokens (the default) and nothing bought. */
describe("holds: decisions", () => {
  test("Given 10,000 tokens, When holds of 6,000 then 5,000 arrive, Then the first is granted and the second denied with what is available", () => {
    const { outputs, state } = runTopic([
      hold({ hold_id: "a", tokens: 6_000 }),
      hold({ hold_id: "b", tokens: 5_000, occurred_at: at(1) }),
    ]);
    const [first, second] = decisions(outputs);
    assert.equal(first?.granted, true);
    assert.equal(first?.reason, null);
    assert.equal(first?.available_tokens, 4_000);
    assert.equal(first?.held_tokens, 6_000);
    assert.equal(second?.granted, false);
    assert.equal(second?.reason, "insufficient_tokens");
    assert.equal(second?.available_tokens, 4_000);
    assert.equal(second?.held_tokens, 6_000);
    assert.match(second?.detail ?? "", /asks 5000 tokens, 4000 available/);
    assert.equal(heldTokens(accountOf(state)), 6_000);
    assert.equal(budgetStateOf(accountOf(state)).held_tokens, 6_000);
    // The budget state still answers "can the account continue" as before: holds do not stop usage.
    assert.equal(budgetStateOf(accountOf(state)).available_tokens, 10_000);
  });

  test("Given grant tokens that expire before the hold would, Then the hold cannot count on them: denied, and one lasting no longer than the grant is granted and settles free", () => {
    const noTrial = credit({ record_id: "b-0", kind: "budget_set", tokens: 0, occurred_at: at(0) });
    const grantUntil = (id: string, minute: number) =>
      credit({ record_id: id, kind: "grant", tokens: 1_000, occurred_at: at(0), expires_at: at(minute) });
    const grant = grantUntil("g-short", 5);
    // Granted on the grant, the turn's usage at minute 10 would find it forfeited and be billed in overdraft.
    const { outputs: longer } = runTopic([
      noTrial,
      grant,
      hold({ hold_id: "long", tokens: 1_000, occurred_at: at(1), expires_at: at(30) }),
    ]);
    const [denied] = decisions(longer);
    assert.equal(denied?.granted, false);
    assert.equal(denied?.reason, "insufficient_tokens");
    assert.match(
      denied?.detail ?? "",
      /asks 1000 tokens, 0 available \(1000 left, 0 held, 1000 in grants that expire before the hold\)/,
    );
    // A hold ending when the grant does (its expires_at instant included) may count on it.
    const { outputs } = runTopic([
      noTrial,
      grant,
      hold({ hold_id: "short", tokens: 1_000, occurred_at: at(1), expires_at: at(5) }),
      usage({ record_id: "u-settle", hold_id: "short", occurred_at: at(5), ...tokens(900) }),
    ]);
    assert.equal(decisions(outputs)[0]?.granted, true);
    const outcome = ofKind(accountOutputs(outputs), "usage_outcome")[0]!;
    assert.deepEqual(
      [outcome.grant_tokens_used, outcome.paid_tokens_used, outcome.billed_micros, outcome.decision],
      [900, 0, 0n, "trial"],
    );
    // A grant lasting as long as the hold counts in full.
    const { outputs: granted } = runTopic([
      noTrial,
      grantUntil("g-long", 30),
      hold({ hold_id: "long", tokens: 1_000, occurred_at: at(1), expires_at: at(30) }),
    ]);
    assert.equal(decisions(granted)[0]?.granted, true);
  });

  test("Given everything held, When usage without a hold arrives, Then it is metered as always (and may overdraft)", () => {
    const { outputs, state } = runTopic([
      hold({ hold_id: "a", tokens: 10_000 }),
      usage({ record_id: "u-1", ...tokens(12_000), occurred_at: at(1) }),
    ]);
    const [outcome] = ofKind(accountOutputs(outputs), "usage_outcome");
    assert.equal(outcome?.tokens_used, 12_000);
    assert.equal(outcome?.decision, "overdraft");
    assert.equal(heldTokens(accountOf(state)), 10_000);
    assert.equal(holdAvailableTokens(accountOf(state)), -12_000);
    // Nothing more can be held while the account is overdrawn.
    const after = runTopic(
      [hold({ hold_id: "b", tokens: 1, occurred_at: at(2) })],
      defaultBillingConfig,
      state,
    );
    assert.equal(decisions(after.outputs)[0]?.reason, "insufficient_tokens");
  });

  test("Given a hold expiring after 2106-02-07T06:28:15.999Z (no record could ever pass it), Then it is refused RECORD_OUT_OF_RANGE and nothing is held", () => {
    // Dated just before the range's end, so that the expiry is within the longest a hold may last.
    const occurred_at = "2106-02-07T06:28:00Z";
    const { outputs, state } = runTopic([
      hold({ hold_id: "forever", occurred_at, expires_at: "2106-02-07T06:40:00Z" }),
      hold({ hold_id: "last", occurred_at, expires_at: "2106-02-07T06:28:15.999Z" }),
    ]);
    const refused = ofKind(accountOutputs(outputs), "rejected");
    assert.deepEqual(
      refused.map((r) => [r.record_id, r.code]),
      [["h-forever", "RECORD_OUT_OF_RANGE"]],
    );
    assert.match(refused[0]!.reason, /^expires_at 2106-02-07T06:40:00Z is outside/);
    assert.deepEqual(
      decisions(outputs).map((d) => [d.hold_id, d.granted, d.reason]),
      [
        ["forever", false, "record_rejected"],
        ["last", true, null],
      ],
    );
    assert.equal(heldTokens(accountOf(state)), 1_000);
  });

  test("Given a hold of 6,000, When the usage naming it used 1,500, Then 1,500 is billed and 4,500 released", () => {
    const { outputs, state } = runTopic([
      hold({ hold_id: "a", tokens: 6_000 }),
      usage({ record_id: "u-1", hold_id: "a", ...tokens(1_000, 500), occurred_at: at(1) }),
    ]);
    const account = accountOutputs(outputs);
    const [outcome] = ofKind(account, "usage_outcome");
    assert.equal(outcome?.tokens_used, 1_500);
    const settled = ofKind(account, "budget_event").find((event) => event.event === "hold_settled");
    assert.deepEqual(
      settled && {
        hold_id: settled.hold_id,
        hold_tokens: settled.hold_tokens,
        used_tokens: settled.used_tokens,
        released_tokens: settled.released_tokens,
        held_tokens: settled.held_tokens,
      },
      { hold_id: "a", hold_tokens: 6_000, used_tokens: 1_500, released_tokens: 4_500, held_tokens: 0 },
    );
    // The usage outcome comes first, then its events, then the settle.
    assert.deepEqual(
      account.map((output) => (output.kind === "budget_event" ? output.event : output.kind)),
      ["hold_decision", "usage_outcome", "hold_settled"],
    );
    assert.equal(accountOf(state).trial_used_tokens, 1_500);
    assert.equal(accountOf(state).holds, undefined, "no open hold left: no holds field");
  });

  test("Given a hold of 1,000, When the usage naming it used 3,000, Then all 3,000 are billed and nothing is released", () => {
    const { outputs, state } = runTopic([
      credit({ record_id: "c-1", kind: "budget_set", tokens: 2_000, occurred_at: at(0) }),
      hold({ hold_id: "a", tokens: 1_000, occurred_at: at(1) }),
      usage({ record_id: "u-1", hold_id: "a", ...tokens(3_000), occurred_at: at(2) }),
    ]);
    const settled = ofKind(accountOutputs(outputs), "budget_event").find((e) => e.event === "hold_settled");
    assert.equal(settled?.event === "hold_settled" && settled.released_tokens, 0);
    assert.equal(accountOf(state).tokens_used, 3_000);
    assert.equal(accountOf(state).paid_used_tokens, 1_000);
  });

  test("Given an open hold, When it is released, Then its tokens are available to the next hold", () => {
    const { outputs, state } = runTopic([
      hold({ hold_id: "a", tokens: 8_000 }),
      hold({ hold_id: "b", tokens: 8_000, occurred_at: at(1) }),
      release({ hold_id: "a", occurred_at: at(2) }),
      hold({ hold_id: "c", tokens: 8_000, occurred_at: at(3) }),
    ]);
    assert.deepEqual(
      decisions(outputs).map((d) => [d.hold_id, d.granted]),
      [
        ["a", true],
        ["b", false],
        ["c", true],
      ],
    );
    assert.deepEqual(budgetEvents(accountOutputs(outputs)), ["hold_released"]);
    assert.deepEqual(Object.keys(accountOf(state).holds ?? {}), ["c"]);
    assert.equal(accountOf(state).tokens_used, 0, "a release bills nothing");
  });

  test("Given a hold id that is open, When it is asked again under a new record id, Then the grant is repeated and nothing more is held", () => {
    const { outputs, state } = runTopic([
      hold({ hold_id: "a", tokens: 4_000 }),
      hold({ record_id: "h-a-retry", hold_id: "a", tokens: 9_000, occurred_at: at(1) }),
    ]);
    const [, repeat] = decisions(outputs);
    assert.equal(repeat?.granted, true);
    assert.equal(repeat?.repeated, true);
    assert.equal(repeat?.tokens, 4_000);
    assert.equal(heldTokens(accountOf(state)), 4_000);
  });

  test("Given a hold that ended, When its hold id is asked again, Then it is denied: a hold ends once", () => {
    const { outputs } = runTopic([
      hold({ hold_id: "a" }),
      release({ hold_id: "a", occurred_at: at(1) }),
      hold({ record_id: "h-a-again", hold_id: "a", occurred_at: at(2), expires_at: at(12) }),
    ]);
    const last = decisions(outputs).at(-1);
    assert.equal(last?.granted, false);
    assert.equal(last?.reason, "hold_id_ended");
  });

  test("Given a hold record seen before (same record id), Then it is a duplicate and changes nothing", () => {
    const { outputs, state } = runTopic([hold({ hold_id: "a" }), hold({ hold_id: "a" })]);
    assert.deepEqual(
      accountOutputs(outputs).map((output) => output.kind),
      ["hold_decision", "duplicate_ignored"],
    );
    assert.equal(ofKind(accountOutputs(outputs), "duplicate_ignored")[0]?.record_type, "hold");
    assert.equal(heldTokens(accountOf(state)), 1_000);
  });

  test("Given holds.max_open 2, When a third hold arrives, Then it is denied too_many_holds", () => {
    const cfg = config({ holds: { max_open: 2 } });
    const { outputs } = runTopic(
      [hold({ hold_id: "a" }), hold({ hold_id: "b" }), hold({ hold_id: "c" })],
      cfg,
    );
    assert.deepEqual(
      decisions(outputs).map((d) => d.reason),
      [null, null, "too_many_holds"],
    );
  });

  test("Given holds.max_seconds, When a hold would last longer, Then it is denied expiry_too_far", () => {
    const cfg = config({ holds: { max_seconds: 600 } });
    const { outputs } = runTopic([hold({ hold_id: "a", expires_at: at(11) })], cfg);
    assert.equal(decisions(outputs)[0]?.reason, "expiry_too_far");
  });

  test("Given the account's event time past a hold's expires_at, When the hold arrives late, Then it is denied expired", () => {
    const { outputs } = runTopic([
      usage({ record_id: "u-1", ...tokens(1), occurred_at: at(30) }),
      hold({ hold_id: "a", occurred_at: at(5), expires_at: at(20) }),
    ]);
    assert.equal(decisions(outputs)[0]?.reason, "expired");
  });

  test("Given a hold record the rules reject, Then a denial follows its rejection, so the caller is answered", () => {
    const result = applyBatch(
      emptyState(),
      [{ record: hold({ hold_id: "a" }), logTimeMs: Date.parse(at(0)) - 3_600_000 }],
      defaultBillingConfig,
    );
    assert.deepEqual(
      result.outputs.map((output) => output.kind),
      ["rejected", "hold_decision"],
    );
    const decision = decisions(result.outputs)[0];
    assert.equal(decision?.granted, false);
    assert.equal(decision?.reason, "record_rejected");
    assert.match(decision?.detail ?? "", /^RECORD_TIME_SKEW: /);
    assert.deepEqual(result.state.accounts, {}, "a rejected record creates no account");
  });

  test("Given a creator's platform account, Then hold outputs name the app the hold record named", () => {
    const { outputs } = runTopic([hold({ ...PLATFORM_IDS, hold_id: "a", expires_at: at(5) }), tick(6)]);
    const expired = ofKind(accountOutputs(outputs), "budget_event")[0];
    assert.equal(expired?.event, "hold_expired");
    assert.equal(expired?.account_key, "platform:user_123");
    assert.equal(expired?.enterprise_id, "app_456");
    assert.equal(expired?.record_id, "tick-6");
  });
});

describe("holds: expiry", () => {
  test("Given a hold expiring at minute 10, When a record at minute 10 arrives, Then it is still open; at the first record past it, it expires before the record's own outputs", () => {
    const { outputs, state } = runTopic([
      hold({ hold_id: "a", expires_at: at(10) }),
      credit({ record_id: "c-1", tokens: 1, occurred_at: at(10) }),
      credit({ record_id: "c-2", tokens: 1, occurred_at: at(11) }),
    ]);
    const account = accountOutputs(outputs);
    assert.deepEqual(
      account.map(
        (output) => `${output.record_id}:${output.kind === "budget_event" ? output.event : output.kind}`,
      ),
      ["h-a:hold_decision", "c-1:credit_applied", "c-2:hold_expired", "c-2:credit_applied"],
    );
    assert.equal(heldTokens(accountOf(state)), 0);
    assert.equal(accountOf(state).holds, undefined);
  });

  test("Given an idle account, When a tick past the expiry is applied, Then the hold expires, and accounts with nothing due are not touched", () => {
    const other = credit({ ...PLATFORM_IDS, record_id: "p-1", tokens: 5, occurred_at: at(0) });
    const before = runTopic([
      hold({ hold_id: "a", expires_at: at(10) }),
      hold({ ...PLATFORM_IDS, hold_id: "late", expires_at: at(50) }),
      other,
    ]).state;
    const early = runTopic([tick(10)], defaultBillingConfig, before);
    assert.deepEqual(early.outputs, [], "a tick at expires_at expires nothing");
    const late = runTopic([tick(11)], defaultBillingConfig, before);
    assert.deepEqual(
      late.outputs.map(
        (output) =>
          output.kind === "budget_event" && output.event === "hold_expired" && [output.event, output.hold_id],
      ),
      [["hold_expired", "a"]],
    );
    assert.equal(late.outputs[0]?.seq, 0);
    assert.equal(late.state.accounts["platform:user_123"], before.accounts["platform:user_123"]);
    assert.equal(heldTokens(accountOf(late.state)), 0);
    assert.equal(heldTokens(accountOf(before)), 1_000, "the input state is not mutated");
  });

  test("Given an expired hold, When its settling usage arrives, Then the usage is billed and hold_not_open says it had ended", () => {
    const { outputs, state } = runTopic([
      hold({ hold_id: "a", expires_at: at(5) }),
      usage({ record_id: "u-1", hold_id: "a", ...tokens(700), occurred_at: at(6) }),
      release({ hold_id: "a", occurred_at: at(7) }),
      release({ record_id: "r-unknown", hold_id: "never", occurred_at: at(8) }),
    ]);
    const account = accountOutputs(outputs);
    assert.deepEqual(
      account.map((output) => (output.kind === "budget_event" ? output.event : output.kind)),
      ["hold_decision", "hold_expired", "usage_outcome", "hold_not_open", "hold_not_open", "hold_not_open"],
    );
    const notOpen = ofKind(account, "budget_event").filter((e) => e.event === "hold_not_open");
    assert.deepEqual(
      notOpen.map((e) => e.event === "hold_not_open" && [e.record_type, e.ended]),
      [
        ["usage", true],
        ["release", true],
        ["release", false],
      ],
    );
    assert.equal(accountOf(state).tokens_used, 700);
  });

  test("Given a tick dated too far from its log time, Then it is rejected and expires nothing", () => {
    const before = runTopic([hold({ hold_id: "a", expires_at: at(5) })]).state;
    const result = applyBatch(
      before,
      [{ record: tick(600), logTimeMs: Date.parse(at(6)) }],
      defaultBillingConfig,
    );
    assert.equal(result.outputs.length, 1);
    const [rejected] = result.outputs;
    assert.equal(rejected?.kind, "tick_rejected");
    assert.equal(rejected?.kind === "tick_rejected" && rejected.code, "RECORD_TIME_SKEW");
    assert.equal(heldTokens(accountOf(result.state)), 1_000);
  });

  test("earliestHoldExpiry is the earliest expires_at of the open holds, null without any", () => {
    const { state } = runTopic([
      hold({ hold_id: "a", expires_at: at(9) }),
      hold({ hold_id: "b", expires_at: at(4) }),
      hold({ hold_id: "c", expires_at: at(7) }),
    ]);
    assert.equal(earliestHoldExpiry(accountOf(state)), Date.parse(at(4)));
    const { state: none } = runTopic([credit({ occurred_at: at(0) })]);
    assert.equal(earliestHoldExpiry(accountOf(none)), null);
  });
});

describe("holds: records, keys and states", () => {
  test("a hold asks at least one token and expires after it occurs", () => {
    assert.throws(() => hold({ tokens: 0 }));
    assert.throws(() => hold({ expires_at: at(0) }));
    assert.throws(() => hold({ tokens: 1.5 }));
  });

  test("decodeRecord refuses a tick (it belongs to no account); decodeTopicRecord takes every record", () => {
    const text = JSON.stringify(tick(1));
    assert.equal(decodeRecord(text, { maxBytes: 65_536 }).ok, false);
    const decoded = decodeTopicRecord(text, { maxBytes: 65_536 });
    assert.ok(decoded.ok);
    assert.deepEqual(decoded.record, tick(1));
    const usageText = JSON.stringify({ ...usage(), hold_id: "a" });
    const both = [
      decodeRecord(usageText, { maxBytes: 65_536 }),
      decodeTopicRecord(usageText, { maxBytes: 65_536 }),
    ];
    for (const result of both)
      assert.equal(result.ok && result.record.type === "usage" && result.record.hold_id, "a");
  });

  test("the hold, release and tick examples of docs/records.md are valid records", () => {
    const examples = [...renderRecordsDoc().matchAll(/```json\n(.*)\n```/g)].map((m) => m[1]!);
    assert.deepEqual(
      examples.map((example) => JSON.parse(example).type),
      ["hold", "release", "tick"],
    );
    for (const example of examples) {
      const decoded = decodeTopicRecord(example, { maxBytes: 65_536 });
      assert.ok(decoded.ok, `${example}: ${decoded.ok ? "" : decoded.reason}`);
    }
  });

  test("a tick key names its partition and a salt; tickKeyFor finds the first salt that lands", () => {
    assert.equal(tickKeyOf(3, "1z"), "tick:3:1z");
    assert.deepEqual(parseTickKey("tick:3:1z"), { partition: 3, salt: "1z" });
    for (const bad of ["tick:3", "tick:-1:a", "tick:03:a", "tick:3:A", "app:3:a", "tick:3:a:b"]) {
      assert.throws(
        () => parseTickKey(bad),
        (error) => isAgentmeterError(error, "KEY_INVALID"),
        bad,
      );
    }
    // A stand-in partitioner: the key's characters summed, modulo 7.
    const partitionOf = (key: string) => [...key].reduce((sum, c) => sum + c.charCodeAt(0), 0) % 7;
    for (let partition = 0; partition < 7; partition++) {
      const key = tickKeyFor(partition, (candidate) => partitionOf(candidate) === partition);
      assert.equal(partitionOf(key), partition);
      assert.equal(parseTickKey(key).partition, partition);
    }
    assert.throws(
      () => tickKeyFor(9, () => false, 50),
      (error) => isAgentmeterError(error, "KEY_INVALID"),
    );
  });

  test("a budget state published before holds existed still reads, with held_tokens 0", () => {
    const state = budgetStateOf(accountOf(runTopic([credit()]).state));
    const { held_tokens: _held, ...old } = state;
    assert.equal(budgetStateSchema.parse(old).held_tokens, 0);
  });
});

// --- properties ----------------------------------------------------------------------------------

const ACCOUNTS = [
  APP_IDS,
  {
    level: "app_usage",
    enterprise_id: "app_2",
    mozaiks_user_id: "user_123",
    platform_user_id: "end_2",
  } as const,
  PLATFORM_IDS,
];
const HOLD_IDS = ["h0", "h1", "h2", "h3", "h4", "h5"];

type Spec =
  | { t: "hold"; who: number; id: number; tokens: number; minute: number; lasts: number }
  | { t: "release"; who: number; id: number; minute: number }
  | { t: "usage"; who: number; id: number | null; tokens: number; minute: number }
  | { t: "credit"; who: number; kind: "top_up" | "grant" | "budget_set"; tokens: number; minute: number }
  | { t: "tick"; minute: number };

const who = fc.integer({ min: 0, max: ACCOUNTS.length - 1 });
const holdId = fc.integer({ min: 0, max: HOLD_IDS.length - 1 });
const minute = fc.integer({ min: 0, max: 40 });

const holdSpec = fc.record({
  t: fc.constant("hold" as const),
  who,
  id: holdId,
  tokens: fc.integer({ min: 1, max: 6_000 }),
  minute,
  lasts: fc.integer({ min: 1, max: 20 }),
});
const releaseSpec = fc.record({ t: fc.constant("release" as const), who, id: holdId, minute });
const usageSpec = fc.record({
  t: fc.constant("usage" as const),
  who,
  id: fc.option(holdId, { nil: null }),
  tokens: fc.integer({ min: 0, max: 6_000 }),
  minute,
});
const creditSpec = (kinds: readonly ("top_up" | "grant" | "budget_set")[]) =>
  fc.record({
    t: fc.constant("credit" as const),
    who,
    kind: fc.constantFrom(...kinds),
    tokens: fc.integer({ min: 0, max: 20_000 }),
    minute,
  });
const tickSpec = fc.record({ t: fc.constant("tick" as const), minute });

/**
 * A turn: a hold, then (later, maybe past its expiry) the usage that settles it or its release, as an
 * agent runtime sends them.
 */
const turnSpec = (ends: readonly ("usage" | "release")[]) =>
  fc.record({
    hold: holdSpec,
    after: fc.integer({ min: 0, max: 25 }),
    end: fc.constantFrom(...ends),
    used: fc.integer({ min: 0, max: 8_000 }),
  });
type Turn = ReturnType<typeof turnSpec> extends fc.Arbitrary<infer T> ? T : never;

/**
 * Records in the order of their event time give or take a few minutes (producers deliver out of order),
 * each turn's end after its hold.
 */
function streamOf(
  spec: fc.Arbitrary<Spec>,
  ends: readonly ("usage" | "release")[] = ["usage", "release"],
  maxLength = 50,
): fc.Arbitrary<TopicRecord[]> {
  const item = fc.oneof(
    { weight: 3, arbitrary: spec.map((one) => ({ one })) },
    { weight: 2, arbitrary: turnSpec(ends).map((turn) => ({ turn })) },
  );
  return fc
    .array(fc.tuple(item, fc.integer({ min: 0, max: 5 }), fc.integer({ min: 0, max: 5 })), {
      minLength: 1,
      maxLength,
    })
    .map((items) => {
      const placed: { spec: Spec; order: number }[] = [];
      for (const [entry, jitter, endJitter] of items) {
        if ("one" in entry) {
          placed.push({ spec: entry.one, order: entry.one.minute + jitter });
          continue;
        }
        const { hold: opened, after, end, used }: Turn = entry.turn;
        const endMinute = opened.minute + after;
        placed.push({ spec: opened, order: opened.minute + jitter });
        const closing: Spec =
          end === "usage"
            ? { t: "usage", who: opened.who, id: opened.id, tokens: used, minute: endMinute }
            : { t: "release", who: opened.who, id: opened.id, minute: endMinute };
        placed.push({ spec: closing, order: Math.max(opened.minute + jitter, endMinute + endJitter) + 0.5 });
      }
      // A stable sort: equal orders keep their generated order.
      return build(placed.sort((a, b) => a.order - b.order).map((entry) => entry.spec));
    });
}

function build(specs: readonly Spec[]): TopicRecord[] {
  return specs.map((spec, index): TopicRecord => {
    const record_id = `r-${index}`;
    if (spec.t === "tick") return tick(spec.minute, { record_id });
    const ids = ACCOUNTS[spec.who]!;
    const occurred_at = at(spec.minute);
    if (spec.t === "hold") {
      return hold({
        ...ids,
        record_id,
        hold_id: HOLD_IDS[spec.id]!,
        tokens: spec.tokens,
        occurred_at,
        expires_at: at(spec.minute + spec.lasts),
      });
    }
    if (spec.t === "release") return release({ ...ids, record_id, hold_id: HOLD_IDS[spec.id]!, occurred_at });
    if (spec.t === "credit")
      return credit({ ...ids, record_id, kind: spec.kind, tokens: spec.tokens, occurred_at });
    return usage({
      ...ids,
      record_id,
      ...tokens(spec.tokens),
      ...(spec.id === null ? {} : { hold_id: HOLD_IDS[spec.id]! }),
      occurred_at,
    });
  });
}

const anything = fc.oneof(
  { weight: 4, arbitrary: holdSpec },
  { weight: 2, arbitrary: releaseSpec },
  { weight: 3, arbitrary: usageSpec },
  { weight: 1, arbitrary: creditSpec(["top_up", "grant", "budget_set"]) },
  { weight: 2, arbitrary: tickSpec },
);
const RUNS = { numRuns: 200 };

function cutRun(state: BillingState, list: readonly TopicRecord[], cuts: readonly number[]) {
  const bounds = [
    0,
    ...[...new Set(cuts)].filter((c) => c <= list.length).sort((a, b) => a - b),
    list.length,
  ];
  const outputs: SequencedTopicOutput<number>[] = [];
  for (let i = 0; i + 1 < bounds.length; i++) {
    const result = applyBatch(
      state,
      list.slice(bounds[i], bounds[i + 1]).map((record, k) => ({ record, seq: bounds[i]! + k })),
      defaultBillingConfig,
    );
    state = result.state;
    outputs.push(...result.outputs);
  }
  return { state, outputs };
}

const key = (record: InputRecord) => accountKeyOf(record);
const holdKey = (output: { account_key: string; hold_id: string }) =>
  `${output.account_key}/${output.hold_id}`;

describe("holds: properties over random streams", () => {
  test("Through holds alone (no usage, no smaller budget), a new hold's available tokens never go below zero", () => {
    const holdsOnly = fc.oneof(
      { weight: 5, arbitrary: holdSpec },
      { weight: 2, arbitrary: releaseSpec },
      { weight: 1, arbitrary: creditSpec(["top_up", "grant"]) },
      { weight: 2, arbitrary: tickSpec },
    );
    fc.assert(
      fc.property(streamOf(holdsOnly, ["release"]), (list) => {
        let state = emptyState();
        for (const record of list) {
          state = applyBatch(state, [{ record }], defaultBillingConfig).state;
          for (const account of Object.values(state.accounts)) {
            assert.ok(holdAvailableTokens(account) >= 0, `${account.account_key} after ${record.record_id}`);
            assert.equal(budgetStateOf(account).held_tokens, heldTokens(account));
          }
        }
      }),
      RUNS,
    );
  });

  test("A hold is granted only within what is available, and every granted hold ends exactly once (settled, released or expired)", () => {
    fc.assert(
      fc.property(streamOf(anything), (list) => {
        // A last tick far ahead: every hold still open has expired by then.
        const { outputs, state } = runTopic([...list, tick(100_000, { record_id: "tick-end" })]);
        const granted = new Map<string, number>();
        const ended = new Map<string, number>();
        for (const output of outputs) {
          if (output.kind === "hold_decision" && output.granted) {
            if (!output.repeated) {
              // A repeat adds nothing, so only a new grant must fit (usage may overdraw the account meanwhile).
              assert.ok(output.available_tokens >= 0, "a new grant leaves nothing negative");
              granted.set(holdKey(output), (granted.get(holdKey(output)) ?? 0) + 1);
            } else {
              assert.ok(granted.has(holdKey(output)) && !ended.has(holdKey(output)), "repeats an open hold");
            }
          }
          if (
            output.kind === "budget_event" &&
            (output.event === "hold_settled" ||
              output.event === "hold_released" ||
              output.event === "hold_expired")
          ) {
            assert.ok(granted.has(holdKey(output)), "only a granted hold ends");
            ended.set(holdKey(output), (ended.get(holdKey(output)) ?? 0) + 1);
          }
        }
        for (const [id, count] of granted) assert.equal(count, 1, `${id} granted once`);
        assert.deepEqual([...ended.entries()].sort(), [...granted.entries()].sort());
        for (const account of Object.values(state.accounts)) assert.equal(account.holds, undefined);
      }),
      RUNS,
    );
  });

  test("A hold expires at the first record of its account, or tick, past expires_at, unless it ended before", () => {
    fc.assert(
      fc.property(streamOf(anything), (list) => {
        const { outputs } = runTopic(list);
        for (const decision of decisions(outputs)) {
          if (!decision.granted || decision.repeated) continue;
          const position = outputs.indexOf(decision);
          const start = decision.seq as number;
          const expiresMs = Date.parse(decision.expires_at);
          const ending = outputs
            .slice(position + 1)
            .find(
              (output): output is Extract<(typeof outputs)[number], { kind: "budget_event" }> =>
                output.kind === "budget_event" &&
                (output.event === "hold_settled" ||
                  output.event === "hold_released" ||
                  output.event === "hold_expired") &&
                holdKey(output) === holdKey(decision),
            );
          const endSeq = ending === undefined ? list.length : (ending.seq as number);
          // Every record of the account (or tick) strictly between the grant and the end is within expires_at.
          for (let i = start + 1; i < endSeq; i++) {
            const record = list[i]!;
            if (record.type !== "tick" && key(record) !== decision.account_key) continue;
            assert.ok(Date.parse(record.occurred_at) <= expiresMs, `${record.record_id} is past the expiry`);
          }
          if (ending === undefined) continue;
          const cause = list[endSeq]!;
          assert.equal(ending.record_id, cause.record_id);
          const past = Date.parse(cause.occurred_at) > expiresMs;
          assert.equal(ending.event === "hold_expired", past, `${ending.event} at ${cause.record_id}`);
        }
      }),
      RUNS,
    );
  });

  test("Two runs of a stream, each cut into batches anywhere, give the same decisions, outputs and state", () => {
    const withCuts = streamOf(anything).chain((list) =>
      fc
        .tuple(
          fc.array(fc.integer({ min: 0, max: list.length }), { maxLength: 8 }),
          fc.array(fc.integer({ min: 0, max: list.length }), { maxLength: 8 }),
        )
        .map(([a, b]) => ({ list, a, b })),
    );
    fc.assert(
      fc.property(withCuts, ({ list, a, b }) => {
        const one = cutRun(emptyState(), list, a);
        const two = cutRun(emptyState(), list, b);
        assert.deepEqual(two.state, one.state);
        assert.deepEqual(two.outputs, one.outputs);
        assert.deepEqual(decisions(two.outputs), decisions(one.outputs));
      }),
      RUNS,
    );
  });

  test("Applying the account records of a stream again changes nothing (every one is a duplicate)", () => {
    fc.assert(
      fc.property(
        streamOf(anything).map((list) =>
          list.filter((record): record is InputRecord => record.type !== "tick"),
        ),
        (list) => {
          const once = runTopic(list);
          const again = runTopic(list, defaultBillingConfig, once.state);
          assert.deepEqual(again.state, once.state);
          for (const output of again.outputs) assert.equal(output.kind, "duplicate_ignored");
        },
      ),
      RUNS,
    );
  });

  test("50 concurrent holds on an account whose budget covers 10: exactly 10 are granted, in any order and any cuts", () => {
    const arbitrary = fc.record({
      order: fc.shuffledSubarray([...Array(50).keys()], { minLength: 50, maxLength: 50 }),
      noise: fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 20 }),
      cuts: fc.array(fc.integer({ min: 0, max: 80 }), { maxLength: 6 }),
      estimate: fc.integer({ min: 1, max: 5_000 }),
    });
    fc.assert(
      fc.property(arbitrary, ({ order, noise, cuts, estimate }) => {
        const records: TopicRecord[] = [
          credit({ record_id: "budget", kind: "budget_set", tokens: 10 * estimate, occurred_at: at(0) }),
        ];
        for (const turn of order) {
          records.push(
            hold({ hold_id: `turn-${turn}`, tokens: estimate, occurred_at: at(1), expires_at: at(5) }),
          );
        }
        // Other accounts' records in between change nothing for this one.
        for (const [i, where] of noise.entries()) {
          records.splice(
            1 + (where % records.length),
            0,
            credit({ ...PLATFORM_IDS, record_id: `p-${i}`, tokens: 7, occurred_at: at(2) }),
          );
        }
        const { outputs, state } = cutRun(emptyState(), records, cuts);
        const mine = decisions(outputs).filter((d) => d.account_key === APP_KEY);
        assert.equal(mine.length, 50);
        assert.equal(mine.filter((d) => d.granted).length, 10);
        assert.equal(heldTokens(accountOf(state) as AccountState), 10 * estimate);
        assert.equal(holdAvailableTokens(accountOf(state)), 0);
      }),
      { numRuns: 100 },
    );
  });
});
