import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { BSON } from "mongodb";
import { bsonSizeBound } from "../../pipeline/processor/bson-size-bound.ts";
import { accountOf, run, usage } from "./builders.ts";

const exact = (value: object) => BSON.calculateObjectSize(value as BSON.Document, { ignoreUndefined: true });

/** JSON-like values as the core's states hold them: Maps, bigints, any Unicode, nesting. */
const { document } = fc.letrec<{ value: unknown; document: object }>((tie) => ({
  value: fc.oneof(
    { depthSize: "small" },
    fc.string({ unit: "binary" }),
    fc.string({ unit: "grapheme-ascii" }),
    fc.integer(),
    fc.double({ noNaN: false }),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.date({ noInvalidDate: true }),
    tie("document"),
    fc.array(tie("value"), { maxLength: 5 }),
  ),
  document: fc.oneof(
    fc.dictionary(fc.string({ unit: "binary" }), tie("value"), { maxKeys: 6 }),
    fc
      .array(fc.tuple(fc.string({ unit: "binary" }), tie("value")), { maxLength: 6 })
      .map((entries) => new Map(entries)),
  ),
}));

describe("bsonSizeBound: a cheap upper bound of a document's BSON size", () => {
  test("Given any JSON-like document with Maps, bigints and any Unicode, Then the bound is at least the exact size", () => {
    fc.assert(
      fc.property(document, (value) => {
        const bound = bsonSizeBound(value);
        assert.notEqual(bound, undefined);
        assert.ok(bound! >= exact(value), `bound ${bound} < exact ${exact(value)}`);
      }),
      { numRuns: 2_000 },
    );
  });

  test("Given an account state of the core, Then it has a bound (the cheap path applies) within 3x of its size", () => {
    const records = Array.from({ length: 50 }, (_, i) =>
      usage({ record_id: `u-${i}`, chat_id: `chat-${i % 4}` }),
    );
    const account = accountOf(run(records).state);
    assert.ok(account.dedupe.seen.size >= 50, "the account holds its record ids");
    const bound = bsonSizeBound(account);
    assert.notEqual(bound, undefined);
    assert.ok(
      bound! >= exact(account) && bound! <= 3 * exact(account),
      `bound ${bound}, exact ${exact(account)}`,
    );
  });

  test("Given a value of a class it does not know, Then there is no bound (the caller measures exactly)", () => {
    class Opaque {
      toBSON() {
        return { big: "x".repeat(100) };
      }
    }
    assert.equal(bsonSizeBound({ a: new Opaque() }), undefined);
    assert.equal(bsonSizeBound({ a: new BSON.ObjectId() }), undefined);
    assert.equal(bsonSizeBound({ a: Symbol("s") }), undefined);
  });
});
