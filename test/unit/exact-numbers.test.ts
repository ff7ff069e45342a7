import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { firstFalseInteger, mayHoldPointOrExponent, scanFalseInteger } from "../../schemas/exact-numbers.ts";
import { bigintReplacer, decodeRecord } from "../../schemas/index.ts";
import { credit, usage } from "./builders.ts";

/** Whether a JSON number literal denotes an integer, in exact arithmetic (BigInt). */
function exactlyInteger(literal: string): boolean {
  const match = /^-?(\d+)(?:\.(\d+))?(?:[eE]([-+]?\d+))?$/.exec(literal)!;
  const fraction = match[2] ?? "";
  const digits = BigInt(match[1]! + fraction);
  const shift = Number(match[3] ?? "0") - fraction.length;
  return shift >= 0 || digits % 10n ** BigInt(-shift) === 0n;
}

const literal = fc
  .tuple(
    fc.boolean(),
    fc.stringMatching(/^(0|[1-9][0-9]{0,21})$/),
    fc.option(fc.stringMatching(/^[0-9]{1,24}$/), { nil: undefined }),
    fc.option(fc.integer({ min: -420, max: 30 }), { nil: undefined }),
  )
  .map(
    ([negative, whole, fraction, exponent]) =>
      `${negative ? "-" : ""}${whole}${fraction === undefined ? "" : `.${fraction}`}${exponent === undefined ? "" : `e${exponent}`}`,
  );

/** JSON whitespace, as a hand-written or pretty-printed text may hold it between tokens. */
const space = fc.constantFrom("", " ", "\n", "\t ", "\r\n  ");
/** Strings full of what looks like numbers: digits, points, exponents, colons, escaped quotes. */
const jsonString = fc
  .string({
    unit: fc.constantFrom("0", "1", "9", ".", "e", "E", "-", "+", ":", ",", "[", '"', "\\", "a", "Z", " "),
  })
  .map((text) => JSON.stringify(text));
/** A JSON text, and whether a number literal in it (not in a string) has a point or an exponent. */
type Text = { text: string; pointOrExponent: boolean };
const { json } = fc.letrec<{ json: Text }>((tie) => ({
  json: fc.oneof(
    { depthSize: "small", maxDepth: 4 },
    literal.map((text) => ({ text, pointOrExponent: /[.eE]/.test(text) })),
    jsonString.map((text) => ({ text, pointOrExponent: false })),
    fc.constantFrom("true", "false", "null").map((text) => ({ text, pointOrExponent: false })),
    fc.array(fc.tuple(space, tie("json"), space), { maxLength: 4 }).map((items) => ({
      text: `[${items.map(([before, item, after]) => before + item.text + after).join(",")}]`,
      pointOrExponent: items.some(([, item]) => item.pointOrExponent),
    })),
    fc.array(fc.tuple(jsonString, space, space, tie("json")), { maxLength: 4 }).map((entries) => ({
      text: `{${entries.map(([key, before, after, item]) => `${key}${before}:${after}${item.text}`).join(",")}}`,
      pointOrExponent: entries.some(([, , , item]) => item.pointOrExponent),
    })),
  ),
}));

describe("number literals that read as integers they are not", () => {
  test("finds a fraction lost to double precision, whatever the literal's form", () => {
    for (const [text, found] of [
      ['{"amount_micros":4503599627370497.5}', "4503599627370497.5"],
      ['{"prompt_tokens":10.0000000000000001}', "10.0000000000000001"],
      ['{"a":[1,2,1.00000000000000001e6]}', "1.00000000000000001e6"],
      ['{"a":1.5e-400}', "1.5e-400"],
      ['{"a":1e6,"b":1.0,"c":1.50e1,"d":-0.0,"e":123.4,"f":true,"g":null}', undefined],
      ['{"a":"4503599627370497.5","b":"say \\"1.5e-400\\"","c":"\\\\","d":7}', undefined],
    ] as const)
      assert.equal(firstFalseInteger(text), found, text);
  });

  test("Property: a literal is found exactly when it denotes a non-integer and reads as an integer", () => {
    fc.assert(
      fc.property(literal, (text) => {
        const expected = Number.isInteger(Number(text)) && !exactlyInteger(text) ? text : undefined;
        assert.equal(firstFalseInteger(`{"a":"${text}","b":[${text}]}`), expected);
      }),
      { numRuns: 3_000 },
    );
  });

  test("Property: nothing JSON.stringify writes is ever found (it writes the literal that reads back the same)", () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.double({ noNaN: true }), fc.integer(), fc.string())), (values) => {
        assert.equal(firstFalseInteger(JSON.stringify({ values })), undefined);
      }),
      { numRuns: 2_000 },
    );
  });

  test("Given a record with such a literal in a token count or an amount, Then it is refused, RECORD_INVALID naming the literal; the integer literal passes", () => {
    const maxBytes = 64 * 1024;
    const tokens = JSON.stringify(usage()).replace(
      '"prompt_tokens":100',
      '"prompt_tokens":100.0000000000000001',
    );
    const amount = JSON.stringify(credit({ amount_micros: "4503599627370497" }), bigintReplacer).replace(
      '"amount_micros":"4503599627370497"',
      '"amount_micros":4503599627370497.5',
    );
    for (const [text, literalText] of [
      [tokens, "100.0000000000000001"],
      [amount, "4503599627370497.5"],
    ] as const) {
      assert.ok(text.includes(literalText));
      const result = decodeRecord(text, { maxBytes });
      assert.equal(result.ok, false, text);
      assert.ok(!result.ok && result.code === "RECORD_INVALID" && result.reason.includes(literalText));
      const exact = text.replace(literalText, literalText.split(".")[0]!);
      assert.equal(decodeRecord(exact, { maxBytes }).ok, true, exact);
    }
  });

  test("Property: the screen passes every text with a point or an exponent in a number literal, so it changes no answer", () => {
    fc.assert(
      fc.property(space, json, space, (before, { text, pointOrExponent }, after) => {
        const whole = before + text + after;
        JSON.parse(whole);
        if (pointOrExponent) assert.equal(mayHoldPointOrExponent(whole), true, whole);
        assert.equal(firstFalseInteger(whole), scanFalseInteger(whole), whole);
      }),
      { numRuns: 5_000 },
    );
  });

  test("The screen lets a record through without the walk when its only points are in its dates", () => {
    const text = JSON.stringify({ ...usage(), occurred_at: "2026-01-01T00:00:00.000Z" });
    assert.ok(text.includes(":00.000Z"));
    assert.equal(mayHoldPointOrExponent(text), false);
    assert.equal(mayHoldPointOrExponent(text.replace('"prompt_tokens":100', '"prompt_tokens":100.0')), true);
    assert.equal(mayHoldPointOrExponent(text.replace('"prompt_tokens":100', '"prompt_tokens" : -1e2')), true);
  });
});
