import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { BSON } from "mongodb";
import { applyBatch, emptyState } from "../../pipeline/core/apply.ts";
import { boundedMap, bsonSizeBound, entryBound } from "../../pipeline/core/bson-size-bound.ts";
import { defaultBillingConfig } from "../../pipeline/core/index.ts";
import { LayeredMap } from "../../pipeline/core/layered-map.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { decodeRecord } from "../../schemas/index.ts";
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
    // An account's id and memo maps: the bound is the weight kept as entries are set, not walked.
    fc
      .array(fc.tuple(fc.string({ unit: "binary" }), tie("value")), { maxLength: 6 })
      .map((entries) => boundedMap(entries)),
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

  test("Given accounts applied batch after batch (copies sharing their maps, voids, sweeps), Then each id and memo map's kept bound is the sum over its entries walked, and at least its exact size", () => {
    const records = [
      ...generateWorkload({
        records: 4_000,
        apps: 2,
        usersPerApp: 5,
        seed: 11,
        startAt: "2026-01-05T09:00:00Z",
      }),
    ].map((json, seq) => {
      const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 1 << 20 });
      assert.ok(decoded.ok);
      return { record: decoded.record, seq };
    });
    const config = {
      ...defaultBillingConfig,
      // Small enough that sweeps and caps delete entries along the way.
      dedupe: { ...defaultBillingConfig.dedupe, horizon_seconds: 3_600, max_entries: 150 },
      corrections: { ...defaultBillingConfig.corrections, window_seconds: 3_600, max_remembered: 100 },
    };
    let state = emptyState();
    const versions: object[] = [];
    for (let i = 0; i < records.length; i += 97) {
      state = applyBatch(state, records.slice(i, i + 97), config).state;
      for (const account of Object.values(state.accounts))
        versions.push(account.dedupe.seen, account.corrections?.usage ?? new Map());
    }
    let maps = 0;
    for (const map of versions) {
      if (!(map instanceof LayeredMap)) continue;
      maps += 1;
      let walked = 0;
      for (const [key, value] of map) walked += entryBound(key as string, value)!;
      assert.equal(map.weight, walked, "the weight kept is the sum over the entries as they are now");
      assert.ok(bsonSizeBound(map)! >= exact(new Map(map)), "and still a bound");
    }
    assert.ok(maps > 200, `${maps} map versions checked`);
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
