import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  addPublished,
  diffHoldDecisions,
  emptyPublished,
  type PublishedDecisions,
  recordsReadOf,
} from "../../pipeline/audit/hold-decisions.ts";
import { type Expected, Recomputer } from "../../pipeline/audit/recompute.ts";
import { buildAuditReport, formatSummary } from "../../pipeline/audit/report.ts";
import { mergeUnits, UnitRecompute } from "../../pipeline/audit/units.ts";
import { creditAuthorization } from "../../pipeline/auth/signature.ts";
import { applyBatch, defaultBillingConfig, emptyState } from "../../pipeline/core/index.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import {
  accountKeyOf,
  type HoldDecision,
  type HoldRecord,
  holdRecordSchema,
  type InputRecord,
} from "../../schemas/index.ts";
import { APP_IDS, at, usage } from "./builders.ts";

/**
 * The audit recomputes every hold decision and sets it against the reply topic (issue 15: "agentmeter
 * audit reproduces every hold decision"). Here the topic is a list of messages; the integration test
 * (test/int/holds.int.test.ts) reads the real one.
 */

function hold(
  id: string,
  tokens: number,
  minute: number,
  user: string = APP_IDS.platform_user_id,
): HoldRecord {
  return holdRecordSchema.parse({
    type: "hold",
    record_id: `h-${id}`,
    ...APP_IDS,
    platform_user_id: user,
    chat_id: "chat-1",
    hold_id: id,
    tokens,
    occurred_at: at(minute),
    expires_at: at(minute + 10),
  });
}

// Two end users with the default 10,000 trial tokens: some holds granted, some denied, one repeated.
const records: InputRecord[] = [
  hold("a", 6_000, 0),
  hold("b", 5_000, 1),
  hold("c", 3_000, 2),
  hold("a", 6_000, 3),
  hold("d", 9_000, 0, "enduser_2"),
  hold("e", 2_000, 1, "enduser_2"),
];
// The retried reserve of hold a: a new record id, the same hold id.
records[3] = { ...records[3]!, record_id: "h-a-retry" } as HoldRecord;

function recompute(): Expected {
  const recomputer = new Recomputer(defaultBillingConfig, 65_536);
  for (const [offset, record] of records.entries()) {
    recomputer.add(0, {
      offset: String(offset),
      key: Buffer.from(accountKeyOf(record)),
      value: Buffer.from(JSON.stringify(record)),
    });
  }
  return recomputer.finish();
}

/** What a correct processor publishes: the core's decisions, as JSON on the reply topic. */
function processorDecisions(): HoldDecision[] {
  const { outputs } = applyBatch(
    emptyState(),
    records.map((record, seq) => ({ record, seq })),
    defaultBillingConfig,
  );
  // Published as the partition worker does: without the core's log position (the schema is strict).
  return outputs
    .filter((output): output is HoldDecision & { seq?: number } => output.kind === "hold_decision")
    .map(({ seq: _position, ...decision }) => decision);
}

function publish(decisions: readonly HoldDecision[], complete = true): PublishedDecisions {
  const published = emptyPublished(complete);
  for (const decision of decisions) addPublished(published, Buffer.from(JSON.stringify(decision)));
  return published;
}

describe("audit: hold decisions against the reply topic", () => {
  it("recomputes one decision per hold record, granted and denied alike", () => {
    const expected = recompute();
    assert.equal(expected.holds.size, records.length);
    assert.equal(expected.counts.hold_decisions, records.length);
    const granted = [...expected.holds.values()].map((decision) => `${decision.hold_id}:${decision.granted}`);
    assert.deepEqual(granted.sort(), ["a:true", "a:true", "b:false", "c:true", "d:true", "e:false"]);
  });

  it("given the decisions the processor published, twice over (a crash republishes), there is no difference", () => {
    const decisions = processorDecisions();
    const check = diffHoldDecisions(recompute().holds, publish([...decisions, ...decisions]));
    assert.deepEqual(check.differences, []);
    assert.equal(check.checked, records.length);
    assert.equal(check.unverifiable, 0);
  });

  it("given a decision that granted what the core denied, and one missing, each is a difference naming its hold record", () => {
    const decisions = processorDecisions();
    const forged = decisions.map((decision) =>
      decision.hold_id === "b" ? { ...decision, granted: true, reason: null, detail: null } : decision,
    );
    const published = publish(forged.filter((decision) => decision.hold_id !== "e"));
    const check = diffHoldDecisions(recompute().holds, published);
    const found = check.differences.map((d) => `${d.subject} ${d.field} ${d.expected} -> ${d.actual}`);
    // In account order (enduser_2 before enduser_789), then record order.
    assert.deepEqual(found, [
      "e decision published -> null",
      "b granted false -> true",
      "b reason insufficient_tokens -> null",
    ]);
    assert.deepEqual(
      check.differences.map((d) => d.record_ids),
      [["h-e"], ["h-b"], ["h-b"]],
    );
    assert.equal(check.differences[0]!.store, "kafka.hold_decisions");
  });

  it("given a reply topic that retention has cut, a missing decision is unverifiable, a wrong one still a difference", () => {
    const decisions = processorDecisions();
    const wrong = decisions.map((decision) =>
      decision.hold_id === "c" ? { ...decision, available_tokens: decision.available_tokens + 1 } : decision,
    );
    const check = diffHoldDecisions(
      recompute().holds,
      publish(
        wrong.filter((decision) => decision.hold_id !== "e"),
        false,
      ),
    );
    assert.equal(check.unverifiable, 1);
    assert.deepEqual(
      check.differences.map((d) => `${d.subject} ${d.field}`),
      ["c available_tokens"],
    );
  });

  it("counts what is not a decision, and decisions of records the audit did not read", () => {
    const published = publish(processorDecisions());
    addPublished(published, Buffer.from("{not json"));
    addPublished(published, null);
    addPublished(published, Buffer.from(JSON.stringify({ kind: "hold_decision" })));
    const later = { ...processorDecisions()[0]!, record_id: "h-later" };
    addPublished(published, Buffer.from(JSON.stringify(later)));
    const check = diffHoldDecisions(recompute().holds, published);
    assert.equal(published.undecodable, 3);
    assert.equal(check.outside_range, 1);
    assert.deepEqual(check.differences, []);
  });

  it("gives the same decisions whether the records were recomputed in one unit or merged from several", () => {
    const units = new UnitRecompute({
      billing: defaultBillingConfig,
      maxRecordBytes: 65_536,
      partitionCounts: [4],
      creditPolicy: creditAuthorization({}),
      partitions: [0, 1, 2, 3],
    });
    const used = new Set<number>();
    records.forEach((record, offset) => {
      const partition = partitionForKey(accountKeyOf(record), 4);
      used.add(partition);
      units.add(partition, {
        offset: String(offset),
        key: Buffer.from(accountKeyOf(record)),
        value: Buffer.from(JSON.stringify(record)),
      });
    });
    assert.equal(used.size, 2, "the two accounts are on two partitions: two units to merge");
    const merged = mergeUnits(units.finish());
    const alone = [...recompute().holds.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    assert.deepEqual([...merged.holds.entries()], alone);
  });

  it("puts what could not be compared in the report and its summary", () => {
    const expected = recompute();
    const report = buildAuditReport({
      range: { topic: "in", partitions: [{ partition: 0, from: "0", to: "6" }], complete: true },
      namespace: { mongodb_platform_db: "p", mongodb_app_db_prefix: "a", clickhouse_database: "c" },
      billing: defaultBillingConfig,
      counts: expected.counts,
      checked: { "kafka.hold_decisions": 5 },
      differences: [],
      holds: { topic: "agentmeter.hold-decisions.v1", unverifiable: 1, outside_range: 0, undecodable: 2 },
    });
    assert.deepEqual(report.summary, [{ store: "kafka.hold_decisions", checked: 5, differences: 0 }]);
    assert.match(formatSummary(report), /6 hold decisions/);
    assert.match(formatSummary(report), /1 decisions not comparable .* 2 messages that are not a decision/);
  });

  it("given a decision for a record of the range that the core made no decision for, it is a difference naming its hold, not outside_range", () => {
    const expected = recomputeWithUsage();
    const decisions = processorDecisions();
    const granted = decisions.find((decision) => decision.hold_id === "c")!;
    // A decision the records do not give (twice: a crash republished it), and one for a record after the range.
    const phantom = { ...granted, record_id: "u-7", hold_id: "z" };
    const later = { ...granted, record_id: "h-later", hold_id: "y" };
    const published = publish([...decisions, phantom, phantom, later]);
    const check = diffHoldDecisions(expected.holds, published, recordsReadOf(expected.trails));
    assert.equal(check.outside_range, 1, "only the decision for a record the audit did not read");
    assert.equal(check.checked, records.length + 1);
    assert.deepEqual(
      check.differences.map((d) => [
        d.store,
        d.subject,
        d.account_key,
        d.field,
        d.expected,
        d.actual,
        d.record_ids,
      ]),
      [["kafka.hold_decisions", "z", granted.account_key, "decision", null, "published", ["u-7"]]],
    );
    assert.match(check.differences[0]!.explained_by, /no hold decision for; 2 decision\(s\) for it/);
    // The same record id under an account that has no such record: not a record of the range.
    const otherAccount = { ...phantom, account_key: "app:app_456:enduser_2", platform_user_id: "enduser_2" };
    const elsewhere = diffHoldDecisions(
      expected.holds,
      publish([...decisions, otherAccount]),
      recordsReadOf(expected.trails),
    );
    assert.deepEqual([elsewhere.differences.length, elsewhere.outside_range], [0, 1]);
  });

  it("given a decision for a record of the range on a reply topic retention has cut, it is found, so still a difference", () => {
    const expected = recomputeWithUsage();
    const decisions = processorDecisions();
    const phantom = { ...decisions[0]!, record_id: "u-7", hold_id: "z" };
    const check = diffHoldDecisions(
      expected.holds,
      publish([...decisions.filter((decision) => decision.hold_id !== "e"), phantom], false),
      recordsReadOf(expected.trails),
    );
    assert.equal(check.unverifiable, 1, "e's decision, not on the cut topic");
    assert.equal(check.outside_range, 0);
    assert.deepEqual(
      check.differences.map((d) => `${d.subject} ${d.field} ${d.expected} -> ${d.actual}`),
      ["z decision null -> published"],
    );
  });

  it("names a decision the core did not make by the least hold id of its copies, whatever their order", () => {
    const expected = recomputeWithUsage();
    const decisions = processorDecisions();
    const copies = [
      { ...decisions[0]!, record_id: "u-7", hold_id: "m" },
      { ...decisions[0]!, record_id: "u-7", hold_id: "k" },
    ];
    const read = recordsReadOf(expected.trails);
    const one = diffHoldDecisions(expected.holds, publish([...decisions, ...copies]), read);
    const other = diffHoldDecisions(expected.holds, publish([...decisions, ...copies.reverse()]), read);
    assert.deepEqual(one.differences, other.differences);
    assert.deepEqual(
      one.differences.map((d) => d.subject),
      ["k"],
    );
  });
});

/** The fixture's records and, after them, a usage record u-7 of enduser_789: no hold decision for it. */
function recomputeWithUsage(): Expected {
  const recomputer = new Recomputer(defaultBillingConfig, 65_536);
  const range = [...records, usage({ record_id: "u-7", occurred_at: at(4) })];
  for (const [offset, record] of range.entries()) {
    recomputer.add(0, {
      offset: String(offset),
      key: Buffer.from(accountKeyOf(record)),
      value: Buffer.from(JSON.stringify(record)),
    });
  }
  return recomputer.finish();
}
