import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { LayeredMap } from "../../pipeline/core/layered-map.ts";

/**
 * LayeredMap against plain Maps: any number of versions made by copy(), changed and read in any
 * interleaving, each version behaves exactly as its own Map would (entries, values, size), and no
 * version sees another's changes.
 */
type Op =
  | { kind: "set"; version: number; key: number; value: number }
  | { kind: "delete"; version: number; key: number }
  | { kind: "copy"; version: number }
  | { kind: "read"; version: number; key: number }
  | { kind: "check"; version: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant("set" as const),
      version: fc.nat(),
      key: fc.nat(40),
      value: fc.integer(),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant("delete" as const), version: fc.nat(), key: fc.nat(40) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("copy" as const), version: fc.nat() }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("read" as const), version: fc.nat(), key: fc.nat(40) }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("check" as const), version: fc.nat() }) },
);

/** A weight that depends on key and value, as the size bound's does. */
const weigh = (key: string, value: number) => key.length + (Math.abs(value) % 7);

function sameAs(actual: LayeredMap<string, number>, model: Map<string, number>): void {
  assert.equal(actual.size, model.size);
  let weight = 0;
  for (const [key, value] of model) weight += weigh(key, value);
  assert.equal(actual.weight, weight);
  const walked: [string, number][] = [];
  actual.forEach((value, key) => {
    walked.push([key, value]);
  });
  assert.deepEqual(new Map(walked), model);
  // As sets of entries: an older version read after newer deletions may list restored keys last.
  assert.deepEqual(new Map(actual), model);
  assert.deepEqual([...actual.keys()].sort(), [...model.keys()].sort());
  for (const [key, value] of model) {
    assert.equal(actual.has(key), true);
    assert.equal(actual.get(key), value);
  }
}

describe("LayeredMap", () => {
  test("every version behaves as its own Map, whatever the interleaving of copies, writes and reads", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat(40), fc.integer()), { maxLength: 30 }),
        fc.array(op, { maxLength: 300 }),
        (start, ops) => {
          const versions = [
            new LayeredMap<string, number>(
              start.map(([k, v]) => [`k${k}`, v]),
              weigh,
            ),
          ];
          const models = [new Map<string, number>(start.map(([k, v]) => [`k${k}`, v]))];
          for (const step of ops) {
            const i = step.version % versions.length;
            const version = versions[i]!;
            const model = models[i]!;
            switch (step.kind) {
              case "set":
                version.set(`k${step.key}`, step.value);
                model.set(`k${step.key}`, step.value);
                break;
              case "delete":
                assert.equal(version.delete(`k${step.key}`), model.delete(`k${step.key}`));
                break;
              case "copy":
                versions.push(version.copy());
                models.push(new Map(model));
                break;
              case "read":
                assert.equal(version.get(`k${step.key}`), model.get(`k${step.key}`));
                assert.equal(version.has(`k${step.key}`), model.has(`k${step.key}`));
                break;
              case "check":
                sameAs(version, model);
            }
          }
          for (const [i, version] of versions.entries()) sameAs(version, models[i]!);
        },
      ),
      { numRuns: 300 },
    );
  });

  test("a version that was never copied keeps insertion order, as a Map does", () => {
    const map = new LayeredMap<string, number>([
      ["b", 1],
      ["a", 2],
    ]);
    map.set("c", 3);
    map.set("b", 4);
    map.delete("a");
    map.set("a", 5);
    assert.deepEqual(
      [...map],
      [
        ["b", 4],
        ["c", 3],
        ["a", 5],
      ],
    );
    const copy = map.copy();
    copy.set("d", 6);
    assert.deepEqual(
      [...copy],
      [
        ["b", 4],
        ["c", 3],
        ["a", 5],
        ["d", 6],
      ],
    );
    assert.deepEqual(
      [...map],
      [
        ["b", 4],
        ["c", 3],
        ["a", 5],
      ],
    );
  });

  test("a forEach callback that reads another version of the map throws instead of walking a mix", () => {
    const map = new LayeredMap<string, number>([
      ["a", 1],
      ["b", 2],
      ["c", 3],
    ]);
    const copy = map.copy();
    copy.set("d", 4);
    assert.throws(
      () =>
        map.forEach(() => {
          copy.get("d");
        }),
      /another version of the map was read during the walk/,
    );
    // Reading the same version, or another map, is fine
    let seen = 0;
    map.forEach(() => {
      seen += map.has("a") ? 1 : 0;
    });
    assert.equal(seen, 3);
  });

  test("deleting while iterating visits every entry once; deep equality compares entries, not storage", () => {
    const map = new LayeredMap<string, number>(Array.from({ length: 10 }, (_, i) => [`k${i}`, i]));
    const copy = map.copy();
    const visited: string[] = [];
    for (const [key, value] of copy) {
      visited.push(key);
      if (value % 2 === 0) copy.delete(key);
    }
    assert.equal(visited.length, 10);
    assert.equal(copy.size, 5);
    assert.equal(map.size, 10);
    assert.notDeepStrictEqual(copy, map);
    const same = map.copy();
    assert.deepStrictEqual(same, map);
    same.set("k0", 99);
    assert.notDeepStrictEqual(same, map);
  });

  test("a copy is O(1): copying a map of 200,000 entries 10,000 times, each copy then changed, stays cheap", () => {
    let map = new LayeredMap<string, number>(Array.from({ length: 200_000 }, (_, i) => [`id-${i}`, i]));
    for (let i = 0; i < 10_000; i++) {
      map = map.copy();
      map.set(`new-${i}`, i);
      map.delete(`id-${i}`);
    }
    // Not a timing assertion: 10,000 full copies of 200,000 entries would take minutes, so the test
    // would not end within the runner's timeout.
    assert.equal(map.size, 200_000);
    assert.equal(map.has("id-0"), false);
    assert.equal(map.get("new-9999"), 9999);
  });
});
