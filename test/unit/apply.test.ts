import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  applyAccountRecords,
  applyBatch,
  applyRecord,
  defaultBillingConfig,
  emptyState,
} from "../../pipeline/core/index.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import { cloneState } from "../support/clone-state.ts";
import { at, credit, PLATFORM_IDS, usage } from "./builders.ts";

describe("applyBatch / applyRecord", () => {
  test("Given a state, When a batch is applied, Then the input is not mutated and untouched accounts are shared", () => {
    const first = applyBatch(
      emptyState(),
      [{ record: usage() }, { record: usage({ ...PLATFORM_IDS, record_id: "p-1" }) }],
      defaultBillingConfig,
    );
    const snapshot = cloneState(first.state);
    const second = applyBatch(
      first.state,
      [{ record: usage({ record_id: "u-2", occurred_at: at(1) }) }],
      defaultBillingConfig,
    );
    assert.deepEqual(first.state, snapshot);
    assert.equal(second.state.accounts["platform:user_123"], first.state.accounts["platform:user_123"]);
    assert.notEqual(
      second.state.accounts["app:app_456:enduser_789"],
      first.state.accounts["app:app_456:enduser_789"],
    );
  });
  test("Given records with seq, Then every output carries its record's seq, in input order", () => {
    const { outputs } = applyBatch(
      emptyState(),
      [
        {
          record: usage({
            record_id: "u-1",
            agent_usage: { A: { prompt_tokens: 10_000, completion_tokens: 0 } },
          }),
          seq: { offset: "1" },
        },
        { record: credit({ occurred_at: at(1) }), seq: { offset: "2" } },
      ],
      defaultBillingConfig,
    );
    assert.deepEqual(
      outputs.map((o) => [o.kind, o.seq?.offset]),
      [
        ["usage_outcome", "1"],
        ["budget_event", "1"],
        ["budget_event", "1"],
        ["budget_event", "1"],
        ["credit_applied", "2"],
        ["budget_event", "2"],
      ],
    );
  });
  test("Given no account, When applyRecord meets a new account, Then it is created and changed is true", () => {
    const result = applyRecord(undefined, usage(), defaultBillingConfig);
    assert.equal(result.changed, true);
    assert.equal(result.account?.account_key, "app:app_456:enduser_789");
    const again = applyRecord(result.account, usage(), defaultBillingConfig);
    assert.equal(again.changed, false);
    assert.equal(again.account, result.account);
  });
  test("Given another account's record, When applyAccountRecords runs, Then RECORD_KEY_MISMATCH is thrown", () => {
    const { account } = applyRecord(undefined, usage(), defaultBillingConfig);
    assert.throws(
      () => applyAccountRecords(account, [usage({ ...PLATFORM_IDS, record_id: "p" })], defaultBillingConfig),
      (error) => isAgentmeterError(error, "RECORD_KEY_MISMATCH"),
    );
  });
  test("Given an account state, When it goes through JSON-like storage (a deep copy), Then results are equal", () => {
    const { account } = applyRecord(undefined, usage(), defaultBillingConfig);
    const next = usage({ record_id: "u-2", occurred_at: at(1) });
    assert.deepEqual(
      applyRecord(cloneState(account), next, defaultBillingConfig),
      applyRecord(account, next, defaultBillingConfig),
    );
  });
});
