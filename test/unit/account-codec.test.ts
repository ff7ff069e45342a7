import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { BSON } from "mongodb";
import type { AccountState } from "../../pipeline/core/index.ts";
import { fromStoredAccount, toStoredAccount } from "../../sinks/mongo/account-codec.ts";
import { PLATFORM_IDS, refundOf, run, tokens, usage, voidOf } from "./builders.ts";

/** Through BSON as the driver writes and reads it (useBigInt64: bigint <-> int64). */
function throughBson(body: object): Record<string, unknown> {
  return BSON.deserialize(BSON.serialize(body), { useBigInt64: true });
}

function reloaded(account: AccountState): AccountState {
  const decoded = fromStoredAccount(throughBson(toStoredAccount(account)));
  assert.ok("account" in decoded, "problem" in decoded ? decoded.problem : "");
  return decoded.account;
}

/** Usage of an end user (and of a creator across two apps), some voided or refunded, some on grants. */
function accountsOf(n: number, seed: number): AccountState[] {
  const records = [];
  for (let i = 0; i < n; i++) {
    const at = new Date(Date.parse("2026-11-01T00:00:00Z") + i * 60_000).toISOString();
    records.push(usage({ record_id: `u-${seed}-${i}`, occurred_at: at, ...tokens(100 + i * seed, i % 7) }));
    records.push(
      usage({
        record_id: `p-${seed}-${i}`,
        ...PLATFORM_IDS,
        enterprise_id: i % 2 === 0 ? "app_456" : "app_789",
        occurred_at: at,
        ...tokens(50 + i, 3),
      }),
    );
  }
  const later = new Date(Date.parse("2026-11-01T00:00:00Z") + (n + 1) * 60_000).toISOString();
  records.push(voidOf(`u-${seed}-0`, { record_id: `v-${seed}`, occurred_at: later }));
  records.push(refundOf(`u-${seed}-${n - 1}`, 1n, { record_id: `r-${seed}`, occurred_at: later }));
  const { state } = run(records);
  return Object.values(state.accounts);
}

describe("stored account documents: correction memos and dedupe ids packed", () => {
  it("a packed account reads back as the same value, memo by memo and in the same order", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 1, max: 1_000 }), (n, seed) => {
        for (const account of accountsOf(n, seed)) {
          assert.ok(account.corrections !== undefined);
          const back = reloaded(account);
          assert.deepStrictEqual(back, account);
          // deepStrictEqual compares Maps as sets of entries: the order is checked apart.
          assert.deepEqual([...back.corrections!.usage.keys()], [...account.corrections.usage.keys()]);
          assert.deepEqual([...back.dedupe.seen.keys()], [...account.dedupe.seen.keys()]);
        }
      }),
      { numRuns: 25 },
    );
  });

  it("keeps what a memo says that the account does not: another app, voided, refunded, grants", () => {
    const [app] = accountsOf(3, 5).filter((a) => a.level === "app_usage");
    assert.ok(app?.corrections);
    const memo = [...app.corrections.usage.values()][0]!;
    app.corrections.usage.set("by-grant", {
      ...memo,
      enterprise_id: "other_app",
      voided: true,
      refunded_micros: 2n ** 70n,
      grants: { "g-1": 40, "g-2": 2 },
    });
    // A late record's draw time, with grants and without
    app.corrections.usage.set("late-grant", { ...memo, grants: { "g-1": 1 }, drawn_ms: memo.at_ms + 5_000 });
    app.corrections.usage.set("late", { ...memo, drawn_ms: memo.at_ms + 7_000 });
    // The write-offs before the draw, alone and with the others
    app.corrections.usage.set("after-write-off", { ...memo, written_off_before: 300 });
    app.corrections.usage.set("late-after-write-off", {
      ...memo,
      grants: { "g-3": 7 },
      drawn_ms: memo.at_ms + 9_000,
      written_off_before: 2 ** 40,
    });
    const back = reloaded(app);
    for (const id of ["by-grant", "late-grant", "late", "after-write-off", "late-after-write-off"]) {
      assert.ok(back.corrections?.usage.has(id), id);
      assert.deepStrictEqual(back.corrections?.usage.get(id), app.corrections.usage.get(id), id);
    }
  });

  it("a document written before packing (memos as a map) is read as it is", () => {
    const [account] = accountsOf(2, 3);
    const decoded = fromStoredAccount(throughBson(account!));
    assert.ok("account" in decoded);
    assert.deepStrictEqual(decoded.account, account);
  });

  it("stores the dedupe ids as one string, not a field per id", () => {
    const [account] = accountsOf(5, 2);
    const stored = toStoredAccount(account!) as { dedupe: Record<string, unknown> };
    assert.equal(stored.dedupe.seen, undefined);
    assert.equal(typeof stored.dedupe.seen_packed, "string");
    assert.deepEqual(stored.dedupe.count, account!.dedupe.count);
  });

  it("a document holding both a pack and a map (edited by hand) is read from the pack", () => {
    const [account] = accountsOf(4, 9);
    const stored = toStoredAccount(account!) as {
      dedupe: Record<string, unknown>;
      corrections: Record<string, unknown>;
    };
    const decoded = fromStoredAccount(
      throughBson({
        ...stored,
        dedupe: { ...stored.dedupe, seen: { stray: 1 } },
        corrections: { ...stored.corrections, usage: { stray: {} } },
      }),
    );
    assert.ok("account" in decoded);
    assert.deepStrictEqual(decoded.account, account);
  });

  it("a corrupt dedupe pack is a problem naming the field, never an exception", () => {
    const [account] = accountsOf(2, 3);
    const stored = toStoredAccount(account!) as { dedupe: Record<string, unknown> };
    for (const bad of ["not json", '["id"]', '["id", "x"]', "[1, 2]", '["id", 1.5]', "{}", 7]) {
      const decoded = fromStoredAccount({ ...stored, dedupe: { ...stored.dedupe, seen_packed: bad } });
      assert.ok("problem" in decoded, String(bad));
      assert.match(decoded.problem, /^dedupe\.seen_packed: /);
    }
  });

  it("a corrupt memo pack is a problem naming the field, never an exception", () => {
    const [account] = accountsOf(2, 3);
    const stored = toStoredAccount(account!) as { corrections: { usage_packed: string } };
    const memo = '"id",1,0,"c",1,1,"1","1",7000,"0",0';
    // A fifteenth element, a draw time that is no integer, a grants place that is neither grants nor 0,
    // write-offs before the draw that are no count
    for (const bad of [
      "not json",
      '[["id", "x"]]',
      "{}",
      7,
      `[[${memo},0,5,6,7]]`,
      `[[${memo},0,1.5]]`,
      `[[${memo},1]]`,
      `[[${memo},0,null,-1]]`,
      `[[${memo},0,null,1.5]]`,
      `[[${memo},0,null,"300"]]`,
    ]) {
      const decoded = fromStoredAccount({
        ...stored,
        corrections: { ...stored.corrections, usage_packed: bad },
      });
      assert.ok("problem" in decoded, String(bad));
      assert.match(decoded.problem, /^corrections\.usage_packed: /);
    }
  });

  it("a document written before packing with a broken map is a problem naming the field", () => {
    const [account] = accountsOf(2, 3);
    const legacy = throughBson(account!) as { dedupe: object; corrections: object };
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...legacy, dedupe: { ...legacy.dedupe, seen: { "r-1": "yesterday" } } }, /^dedupe\.seen: /],
      [{ ...legacy, dedupe: { ...legacy.dedupe, seen: undefined } }, /^dedupe\.seen: /],
      [{ ...legacy, corrections: { ...legacy.corrections, usage: { "r-1": 7 } } }, /^corrections\.usage: /],
      [{ ...legacy, corrections: { ...legacy.corrections, usage: "x" } }, /^corrections\.usage: /],
    ];
    for (const [body, problem] of cases) {
      const decoded = fromStoredAccount(body);
      assert.ok("problem" in decoded, String(problem));
      assert.match(decoded.problem, problem);
    }
  });

  it("takes less than half the bytes of the memos as named fields", () => {
    const accounts = accountsOf(1_000, 7);
    for (const account of accounts) {
      const plain = BSON.calculateObjectSize(account as unknown as BSON.Document);
      const packed = BSON.calculateObjectSize(toStoredAccount(account) as BSON.Document);
      assert.ok(packed < plain / 2, `${account.account_key}: ${packed} bytes packed, ${plain} as fields`);
    }
  });
});
