import assert from "node:assert/strict";
import { describe, test } from "node:test";
import type { Kafka } from "kafkajs";
import pino from "pino";
import { budgetStateOf } from "../../pipeline/core/index.ts";
import { BudgetView } from "../../sdk/budget-view.ts";
import { PLATFORM_IDS, run, tokens, usage } from "./builders.ts";

/** The view without Kafka: its messages are handed to it as its consumer would. */
function viewOf() {
  const view = new BudgetView({} as Kafka, "states", "test", pino({ level: "silent" }));
  const deliver = (state: ReturnType<typeof budgetStateOf>) =>
    (view as unknown as { apply: (key: string, value: Buffer, ms: number) => void }).apply(
      state.account_key,
      Buffer.from(JSON.stringify(state, (_, v) => (typeof v === "bigint" ? v.toString() : v))),
      Date.now(),
    );
  return { view, deliver };
}

const states = () => {
  const { state } = run([
    usage({ record_id: "u-1", ...tokens(100, 0) }),
    usage({ record_id: "p-1", ...PLATFORM_IDS, ...tokens(50, 0) }),
  ]);
  return Object.values(state.accounts).map((account) => budgetStateOf(account));
};

describe("BudgetView.waitFor: a state reaches the waiters of its own account", () => {
  test("Given waiters on two accounts, When one account's state arrives, Then only its waiter resolves", async () => {
    const { view, deliver } = viewOf();
    const [endUser, creator] = states();
    assert.ok(endUser && creator && endUser.account_key !== creator.account_key);
    const waits = { endUser: 0, creator: 0 };
    const endUserWait = view.waitFor(endUser.account_key, () => ++waits.endUser > 0, 1_000);
    const creatorWait = view.waitFor(creator.account_key, () => ++waits.creator > 0, 50);
    deliver(endUser);
    assert.equal((await endUserWait).account_key, endUser.account_key);
    assert.deepEqual(waits, { endUser: 1, creator: 0 }, "the creator's test never saw the end user's state");
    await assert.rejects(creatorWait, /no budget state of platform:/);
  });

  test("Given a waiter whose test the state fails, Then it keeps waiting for a later state", async () => {
    const { view, deliver } = viewOf();
    const [endUser] = states();
    assert.ok(endUser);
    let seen = 0;
    const wait = view.waitFor(endUser.account_key, () => ++seen === 2, 1_000);
    deliver(endUser);
    deliver(endUser);
    await wait;
    assert.equal(seen, 2);
    deliver(endUser);
    assert.equal(seen, 2, "a resolved waiter is removed");
  });
});
