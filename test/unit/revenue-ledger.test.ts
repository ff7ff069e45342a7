import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffStores } from "../../pipeline/audit/diff.ts";
import type { MongoActual } from "../../pipeline/audit/read-mongo.ts";
import { type Expected, Recomputer } from "../../pipeline/audit/recompute.ts";
import { applyBatch, defaultBillingConfig, emptyState } from "../../pipeline/core/index.ts";
import {
  addToLedger,
  earnsRevenue,
  emptyLedger,
  type RevenueLedger,
} from "../../pipeline/core/revenue-ledger.ts";
import { accountKeyOf, bigintReplacer, type InputRecord, type Output } from "../../schemas/index.ts";
import { at, credit, refundOf, usage, voidOf } from "./builders.ts";

/**
 * A creator's earnings fall with every void and refund of their app's usage. Before stop 23 the
 * processor kept adjustments out of the RevenueSharing ledgers: a refunded end user got the money back
 * and the creator's ledger still showed the 70% of it.
 */

// An end user who pays: the trial is spent first, then two billed records, one voided and one half refunded.
const records: InputRecord[] = [
  credit({ record_id: "c-1", tokens: 100_000, amount_micros: "2000000", occurred_at: at(0) }),
  usage({
    record_id: "u-trial",
    agent_usage: { A: { prompt_tokens: 10_000, completion_tokens: 0 } },
    occurred_at: at(1),
  }),
  usage({
    record_id: "u-1",
    agent_usage: { A: { prompt_tokens: 4_000, completion_tokens: 2_000 } },
    occurred_at: at(2),
  }),
  usage({
    record_id: "u-2",
    agent_usage: { A: { prompt_tokens: 3_000, completion_tokens: 1_000 } },
    occurred_at: at(3),
  }),
  voidOf("u-1"),
];

function outputsOf(list: readonly InputRecord[]): Output[] {
  return applyBatch(
    emptyState(),
    list.map((record, seq) => ({ record, seq })),
    defaultBillingConfig,
  ).outputs as Output[];
}

/** The processor's rule, entry by entry (PartitionWorker.addRevenue). */
function ledgerOf(outputs: readonly Output[]): RevenueLedger {
  let ledger = emptyLedger("app_456", "user_123", 0);
  for (const output of outputs) {
    if ((output.kind === "usage_outcome" || output.kind === "adjustment") && earnsRevenue(output))
      ledger = addToLedger(ledger, output);
  }
  return ledger;
}

function billed(outputs: readonly Output[], id: string) {
  const outcome = outputs.find((o) => o.kind === "usage_outcome" && o.record_id === id);
  assert.ok(outcome?.kind === "usage_outcome", `an outcome for ${id}`);
  return outcome;
}

describe("revenue ledgers: voids and refunds reach the creator's earnings", () => {
  it("given a voided and a half-refunded record, then the ledger keeps the gross and adds what was reversed, each split summing exactly", () => {
    const second = outputsOf(records);
    const refund = refundOf("u-2", billed(second, "u-2").billed_micros / 2n);
    const outputs = outputsOf([...records, refund]);
    const [u1, u2] = [billed(outputs, "u-1"), billed(outputs, "u-2")];
    assert.ok(u1.billed_micros > 0n && u2.billed_micros > 0n, "both records are billed");
    const ledger = ledgerOf(outputs);

    assert.equal(ledger.records, 2, "the trial record bills nothing and is not in the ledger");
    assert.equal(ledger.billed_micros, u1.billed_micros + u2.billed_micros);
    assert.equal(ledger.creator_share_micros, u1.creator_share_micros + u2.creator_share_micros);
    assert.equal(ledger.adjustments, 2);
    assert.equal(ledger.reversed_billed_micros, u1.billed_micros + u2.billed_micros / 2n);
    assert.equal(
      ledger.reversed_creator_share_micros! + ledger.reversed_platform_fee_micros!,
      ledger.reversed_billed_micros,
      "what was reversed splits exactly",
    );
    // The void reverses u-1's shares exactly as billed.
    const adjustments = outputs.filter((o) => o.kind === "adjustment");
    assert.equal(adjustments[0]!.creator_share_micros, -u1.creator_share_micros);
    const earned = ledger.creator_share_micros - ledger.reversed_creator_share_micros!;
    assert.ok(
      earned > 0n && earned < u2.creator_share_micros,
      `the creator keeps part of u-2 only: ${earned}`,
    );
  });

  it("given a ledger stored before ledgers had adjustment fields, then the first correction counts from 0", () => {
    const outputs = outputsOf(records);
    const stored = { ...emptyLedger("app_456", "user_123", 0) } as Partial<RevenueLedger>;
    delete stored.adjustments;
    delete stored.reversed_billed_micros;
    delete stored.reversed_creator_share_micros;
    delete stored.reversed_platform_fee_micros;
    const voided = outputs.find((o) => o.kind === "adjustment");
    assert.ok(voided?.kind === "adjustment");
    const after = addToLedger(stored as RevenueLedger, voided);
    assert.equal(after.adjustments, 1);
    assert.equal(after.reversed_billed_micros, -voided.billed_micros);
    assert.equal(after.reversed_creator_share_micros, -voided.creator_share_micros);
  });

  it("given the stores, the audit expects the reversed figures and finds a ledger that lacks them", () => {
    const recomputer = new Recomputer(defaultBillingConfig, 65_536);
    for (const [offset, record] of records.entries())
      recomputer.add(0, {
        offset: String(offset),
        key: Buffer.from(accountKeyOf(record)),
        value: Buffer.from(JSON.stringify(record, bigintReplacer)),
      });
    const expected: Expected = recomputer.finish();
    const want = expected.revenue.get("app_456")!.figures;
    const ledger = ledgerOf(outputsOf(records));
    assert.equal(
      want.reversed_billed_micros,
      ledger.reversed_billed_micros,
      "the audit applies the processor's rule",
    );
    assert.equal(want.adjustments, 1n);

    const storesWith = (figures: typeof want): MongoActual => ({
      accounts: new Map(),
      revenue: new Map([["app_456", figures]]),
      apps: ["app_456"],
    });
    const ledgers = (figures: typeof want) =>
      diffStores(expected, { mongo: storesWith(figures), clickhouse: {} }).filter(
        (d) => d.store === "mongodb.revenue",
      );
    assert.deepEqual(ledgers({ ...want }), []);
    const unreversed = ledgers({
      ...want,
      adjustments: 0n,
      reversed_billed_micros: 0n,
      reversed_creator_share_micros: 0n,
      reversed_platform_fee_micros: 0n,
    });
    assert.deepEqual(
      unreversed.map((d) => d.field),
      [
        "adjustments",
        "reversed_billed_micros",
        "reversed_creator_share_micros",
        "reversed_platform_fee_micros",
      ],
    );
  });
});
