import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { diffStores } from "../../pipeline/audit/diff.ts";
import { namespaceProblem, suffixedConfig } from "../../pipeline/audit/namespace.ts";
import { parseOffsetSpec } from "../../pipeline/audit/range.ts";
import type { UsageTotals } from "../../pipeline/audit/read-clickhouse.ts";
import type { MongoActual } from "../../pipeline/audit/read-mongo.ts";
import { type Expected, Recomputer, type TopicMessage } from "../../pipeline/audit/recompute.ts";
import { buildAuditReport, reportJson } from "../../pipeline/audit/report.ts";
import { loadConfig } from "../../pipeline/config.ts";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { accountKeyOf } from "../../schemas/index.ts";
import { cloneState } from "../support/clone-state.ts";

const billing = parseBillingConfig({});
const records = [...generateWorkload({ seed: 3, records: 400, apps: 2, usersPerApp: 4, runId: "unit" })];

function messages(): TopicMessage[] {
  return records.map((record, index) => ({
    offset: String(index),
    key: Buffer.from(accountKeyOf(record as never)),
    value: Buffer.from(JSON.stringify(record)),
  }));
}

function recompute(list: readonly TopicMessage[]): Expected {
  const recomputer = new Recomputer(billing, 65_536);
  for (const message of list) recomputer.add(0, message);
  return recomputer.finish();
}

/** The stores exactly as a correct processor leaves them after these records. */
function faithfulStores(expected: Expected): {
  mongo: MongoActual;
  clickhouse: { usage_events: Map<string, UsageTotals> };
} {
  const accounts = new Map(
    Object.values(expected.state.accounts).map((account) => [
      account.account_key,
      {
        account_key: account.account_key,
        level: account.level,
        enterprise_id: account.enterprise_id,
        doc: cloneState(account) as never,
      },
    ]),
  );
  const revenue = new Map([...expected.revenue].map(([app, ledger]) => [app, { ...ledger.figures }]));
  const usage = new Map(
    [...expected.usage].map(([key, group]) => [
      key,
      { enterprise_id: group.enterprise_id, level: group.level, figures: { ...group.figures } },
    ]),
  );
  return { mongo: { accounts, revenue, apps: [...revenue.keys()] }, clickhouse: { usage_events: usage } };
}

describe("audit: recompute and diff (no server)", () => {
  it("skips what the processor dead-letters: a message under another key, and one that is not JSON", () => {
    const list = messages();
    const clean = recompute(list);
    const noisy = recompute([
      { offset: "900", key: Buffer.from("app:other:someone"), value: list[0]!.value },
      { offset: "901", key: Buffer.from("x"), value: Buffer.from("{not json") },
      { offset: "902", key: null, value: null },
      ...list,
    ]);
    assert.equal(noisy.counts.skipped_key_mismatch, 1);
    assert.equal(noisy.counts.skipped_undecodable, 2);
    assert.deepEqual(noisy.state, clean.state);
  });

  it("given stores that agree, there is no difference", () => {
    const expected = recompute(messages());
    assert.deepEqual(diffStores(expected, faithfulStores(expected)), []);
  });

  it("given a hand-changed balance, a missing document and a missing row, each is named with its amount and records", () => {
    const expected = recompute(messages());
    const stores = faithfulStores(expected);
    const [first, second] = [...stores.mongo.accounts.values()].filter((a) => a.enterprise_id !== null);
    (first!.doc as { credited_tokens: number }).credited_tokens += 500;
    stores.mongo.accounts.delete(second!.account_key);
    const group = [...stores.clickhouse.usage_events.values()][0]!;
    group.figures.records -= 1n;
    group.figures.billed_micros -= 7n;
    // The same tokens, paid for another way: 3 trial tokens stored as paid
    group.figures.trial_tokens -= 3n;
    group.figures.paid_tokens += 3n;

    const differences = diffStores(expected, stores);
    const balance = differences.find((d) => d.subject === first!.account_key);
    assert.equal(balance?.field, "credited_tokens");
    assert.equal(balance?.delta, "500");
    assert.deepEqual(balance?.record_ids, expected.trails.get(first!.account_key)!.ids.slice(0, 50));
    const missing = differences.find((d) => d.subject === second!.account_key);
    assert.deepEqual([missing?.field, missing?.expected, missing?.actual], ["document", "present", null]);
    const rows = differences.filter((d) => d.store === "clickhouse.usage_events");
    assert.deepEqual(
      rows.map((d) => [d.subject, d.field, d.delta]),
      [
        [`${group.enterprise_id}/${group.level}`, "trial_tokens", "-3"],
        [`${group.enterprise_id}/${group.level}`, "paid_tokens", "3"],
        [`${group.enterprise_id}/${group.level}`, "records", "-1"],
        [`${group.enterprise_id}/${group.level}`, "billed_micros", "-7"],
      ],
    );
  });

  it("given an account whose stored sums of voids and refunds differ, then each is named under corrections.", () => {
    const expected = recompute(messages());
    const stores = faithfulStores(expected);
    const platform = [...stores.mongo.accounts.values()].find((a) => a.level === "platform")!;
    const corrections = (platform.doc as { corrections?: Record<string, unknown> }).corrections;
    assert.ok(corrections !== undefined, "a platform account of the workload remembers its usage");
    corrections.reversed_billed_micros = (corrections.reversed_billed_micros as bigint) + 3n;
    corrections.refunded_micros = (corrections.refunded_micros as bigint) + 3n;
    const differences = diffStores(expected, stores).filter((d) => d.subject === platform.account_key);
    assert.deepEqual(
      differences.map((d) => [d.field, d.delta]),
      [
        ["corrections.reversed_billed_micros", "3"],
        ["corrections.refunded_micros", "3"],
      ],
    );
  });

  it("given the same inputs, the report is byte-identical (sorted, no clock)", () => {
    const build = () => {
      const expected = recompute(messages());
      const stores = faithfulStores(expected);
      for (const account of stores.mongo.accounts.values())
        (account.doc as { tokens_used: number }).tokens_used += 1;
      return reportJson(
        buildAuditReport({
          range: { topic: "t", partitions: [{ partition: 0, from: "0", to: "400" }], complete: true },
          namespace: { mongodb_platform_db: "P", mongodb_app_db_prefix: "A_", clickhouse_database: "c" },
          billing,
          counts: expected.counts,
          checked: { "mongodb.accounts": stores.mongo.accounts.size },
          differences: diffStores(expected, stores),
        }),
      );
    };
    const one = build();
    assert.equal(one, build());
    assert.doesNotMatch(one, /duration|elapsed|generated_at|_ms"/);
  });

  it("parses offset specs and rejects bad ones with the option named", () => {
    assert.equal(parseOffsetSpec("12", "--from-offset").all, 12n);
    assert.deepEqual(
      [...parseOffsetSpec("0:5,3:40", "--to-offset").byPartition],
      [
        [0, 5n],
        [3, 40n],
      ],
    );
    assert.throws(
      () => parseOffsetSpec("0:5,x", "--to-offset"),
      (error) => isAgentmeterError(error, "CLI_USAGE") && error.message.startsWith("--to-offset: 'x'"),
    );
  });

  it("puts a replay's namespace beside the live one, never inside it", () => {
    const live = loadConfig({});
    const replay = suffixedConfig(live, "r1");
    assert.equal(replay.AGENTMETER_INPUT_TOPIC, live.AGENTMETER_INPUT_TOPIC);
    assert.equal(replay.CLICKHOUSE_DATABASE, "agentmeter_r1");
    // Its own prefix: MongoDB compares names ignoring case, so `MozaiksApp_Rr1_x` was live app `rr1_x`'s.
    assert.equal(replay.AGENTMETER_APP_DB_PREFIX, "R_r1_");
    assert.equal(namespaceProblem(live, replay), undefined);
    // A live prefix that a replay's app names could also spell is refused before anything is written.
    const clashing = loadConfig({ AGENTMETER_APP_DB_PREFIX: "r_" });
    assert.throws(
      () => suffixedConfig(clashing, "r1"),
      (error) => isAgentmeterError(error, "CLI_USAGE") && /ignoring case/.test(error.message),
    );
    assert.notEqual(replay.AGENTMETER_EVENTS_TOPIC, live.AGENTMETER_EVENTS_TOPIC);
    assert.notEqual(replay.AGENTMETER_GROUP_ID, live.AGENTMETER_GROUP_ID);
    assert.throws(
      () => suffixedConfig(live, "Bad"),
      (error) => isAgentmeterError(error, "CLI_USAGE"),
    );
  });
});
