import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import {
  accountKeyOf,
  billingConfigSchema,
  deadLetterSchema,
  decodeRecord,
  enterpriseIdSchema,
  microsToDecimalString,
  opaqueIdSchema,
  userIdSchema,
} from "../../schemas/index.ts";
import { usage } from "./builders.ts";

const line = (fields: Record<string, unknown>) => JSON.stringify({ ...usage(), ...fields });

describe("ids", () => {
  test("Given ids with . / \\ $ space NUL or over 48 chars, When validated as enterprise_id, Then rejected", () => {
    for (const bad of ["a.b", "a/b", "a\\b", "a$b", "a b", "a\u0000b", "a".repeat(49), "", "_a", "App"]) {
      assert.equal(enterpriseIdSchema.safeParse(bad).success, false, JSON.stringify(bad));
    }
  });
  test("Given enterprise ids that differ only by case, Then only the lower-case one is accepted", () => {
    assert.equal(enterpriseIdSchema.safeParse("app_456").success, true);
    assert.equal(enterpriseIdSchema.safeParse("APP_456").success, false);
    assert.ok(`MozaiksApp_${"a".repeat(48)}`.length <= 63);
  });
  test("Given user ids, Then `:` is refused (it joins the account key) and prototype keys cannot occur", () => {
    assert.equal(userIdSchema.safeParse("user:1").success, false);
    assert.equal(userIdSchema.safeParse("__proto__").success, false);
    assert.equal(opaqueIdSchema.safeParse("producer-a:42").success, true);
  });
  test("Given an app and a platform record, Then account keys are app:<enterprise>:<user> and platform:<creator>", () => {
    assert.equal(accountKeyOf(usage()), "app:app_456:enduser_789");
    assert.equal(
      accountKeyOf({ level: "platform", enterprise_id: "app_456", mozaiks_user_id: "user_123" }),
      "platform:user_123",
    );
  });
});

describe("decodeRecord", () => {
  test("Given a valid usage line, When decoded, Then ok with schema_version 1 filled in", () => {
    const result = decodeRecord(line({}), { maxBytes: 10_000 });
    assert.equal(result.ok, true);
    assert.equal(result.ok && result.record.schema_version, 1);
  });
  test("Given bytes that are not JSON, Then RECORD_NOT_JSON", () => {
    const result = decodeRecord(Buffer.from("{nope"), { maxBytes: 10_000 });
    assert.deepEqual(result.ok ? null : result.code, "RECORD_NOT_JSON");
  });
  test("Given control characters in what a reason quotes (a refused key, a piece of bad JSON), Then the reason stays one line, with them escaped", () => {
    const forged = "a\nline 99: record_id FAKE: INJECTED\u001b[2J\u0000\u2028";
    const key = decodeRecord(
      line({ agent_usage: { [forged]: { prompt_tokens: 1, completion_tokens: 1 } } }),
      {
        maxBytes: 10_000,
      },
    );
    const extra = decodeRecord(line({ [forged]: 1 }), { maxBytes: 10_000 });
    const notJson = decodeRecord(`{"a": 1,\n\u001b[31m}`, { maxBytes: 10_000 });
    for (const result of [key, extra, notJson]) {
      assert.equal(result.ok, false);
      const reason = result.ok ? "" : result.reason;
      const control = [...reason].filter((char) => {
        const code = char.codePointAt(0)!;
        return code < 0x20 || (code >= 0x7f && code <= 0x9f) || code === 0x2028 || code === 0x2029;
      });
      assert.deepEqual(control, [], reason);
    }
    assert.match(
      key.ok ? "" : key.reason,
      /a\\u000aline 99: record_id FAKE: INJECTED\\u001b\[2J\\u0000\\u2028/,
    );
  });
  test("Given a record over maxBytes, Then RECORD_TOO_LARGE before parsing", () => {
    const result = decodeRecord("x".repeat(101), { maxBytes: 100 });
    assert.equal(result.ok ? null : result.code, "RECORD_TOO_LARGE");
  });
  test("Given output fields (cost, tokens_used) in input, Then RECORD_INVALID naming them: never trusted", () => {
    const result = decodeRecord(line({ cost: 0.45, tokens_used: 15000 }), { maxBytes: 10_000 });
    assert.equal(result.ok, false);
    assert.match(result.ok ? "" : result.reason, /cost/);
    assert.match(result.ok ? "" : result.reason, /tokens_used/);
  });
  test("Given a bad nested field, Then the reason carries the zod issue path", () => {
    const result = decodeRecord(line({ agent_usage: { A: { prompt_tokens: -1, completion_tokens: 0 } } }), {
      maxBytes: 10_000,
    });
    assert.match(result.ok ? "" : result.reason, /agent_usage\.A\.prompt_tokens/);
  });
  test("Given app_usage without platform_user_id or platform with one, Then RECORD_INVALID", () => {
    const { platform_user_id: _, ...noUser } = usage();
    assert.equal(decodeRecord(JSON.stringify(noUser), { maxBytes: 10_000 }).ok, false);
    assert.equal(decodeRecord(line({ level: "platform" }), { maxBytes: 10_000 }).ok, false);
  });
  test("Given a time without zone, an empty agent_usage or schema_version 2, Then RECORD_INVALID", () => {
    for (const fields of [
      { occurred_at: "2025-07-28T10:00:00" },
      { agent_usage: {} },
      { schema_version: 2 },
    ]) {
      const result = decodeRecord(line(fields), { maxBytes: 10_000 });
      assert.equal(result.ok ? null : result.code, "RECORD_INVALID", JSON.stringify(fields));
    }
  });
  test("Given amount_micros as a string, When a credit is decoded, Then it is a bigint", () => {
    const text = JSON.stringify({
      type: "credit",
      record_id: "c",
      kind: "top_up",
      level: "platform",
      enterprise_id: "a",
      mozaiks_user_id: "u",
      tokens: 1,
      amount_micros: "1234567890123456789",
      occurred_at: "2025-07-28T10:00:00+02:00",
    });
    const result = decodeRecord(text, { maxBytes: 10_000 });
    assert.equal(
      result.ok && result.record.type === "credit" && result.record.amount_micros,
      1234567890123456789n,
    );
  });
});

describe("config, money and dead letters", () => {
  test("Given an empty config, Then the documented defaults", () => {
    const parsed = billingConfigSchema.parse({});
    assert.equal(parsed.app_trial_tokens.default, 10_000);
    assert.equal(parsed.platform_allowance_tokens, 100_000);
    assert.equal(parsed.creator_share_bp.default, 7_000);
    assert.deepEqual(parsed.thresholds_bp, [8_000, 10_000]);
    assert.equal(parsed.unknown_model, "dead_letter");
    assert.equal(parsed.dedupe.horizon_seconds, 7 * 86_400);
  });
  test("Given a config with a bad field, Then CONFIG_INVALID naming the field", () => {
    assert.throws(
      () => parseBillingConfig({ creator_share_bp: { default: 12_000 } }),
      (error) =>
        isAgentmeterError(error, "CONFIG_INVALID") && /creator_share_bp\.default/.test(error.message),
    );
  });
  test("Given micros, Then the decimal display drops trailing zeros", () => {
    assert.equal(microsToDecimalString(450_000n), "0.45");
    assert.equal(microsToDecimalString(15_000n), "0.015");
    assert.equal(microsToDecimalString(1_000_000n), "1");
    assert.equal(microsToDecimalString(0n), "0");
    assert.equal(microsToDecimalString(-1_500_001n), "-1.500001");
  });
  test("Given a dead letter envelope, Then original is base64 and offset a decimal string", () => {
    const envelope = {
      schema_version: 1,
      reason_code: "RECORD_INVALID",
      reason: "cost: Unrecognized key",
      original: Buffer.from("{}").toString("base64"),
      source: { topic: "usage", partition: 0, offset: "42" },
      key: null,
      failed_at: "2025-07-28T10:00:00Z",
    };
    assert.equal(deadLetterSchema.safeParse(envelope).success, true);
    assert.equal(deadLetterSchema.safeParse({ ...envelope, reason_code: "NOPE" }).success, false);
  });
});
