import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { heldTokens, parseBillingConfig } from "../../pipeline/core/index.ts";
import { AgentmeterError, isAgentmeterError } from "../../pipeline/errors.ts";
import { createLogger } from "../../pipeline/log.ts";
import type { InputRecord } from "../../schemas/index.ts";
import { HoldReplies } from "../../sdk/hold-replies.ts";
import { type HoldGrant, runHeld, SETTLE_RESEND_DELAYS_MS } from "../../sdk/holds.ts";
import { Agentmeter, PlatformTokenManager, TokenManager } from "../../sdk/index.ts";
import { KafkaBackend } from "../../sdk/kafka-backend.ts";
import { prepareRecord } from "../../sdk/validate.ts";

/** An end user with a 10,000-token trial: 10 turns of 1,000. */
const billing = parseBillingConfig({
  app_trial_tokens: { default: 10_000 },
  platform_allowance_tokens: 5_000,
});
const USER = {
  level: "app_usage",
  enterprise_id: "app-1",
  mozaiks_user_id: "creator-1",
  platform_user_id: "user-1",
} as const;
const SESSION = {
  enterprise_id: "app-1",
  mozaiks_user_id: "creator-1",
  platform_user_id: "user-1",
  workflow_name: "chat",
};

function settleUsage(tokens: number) {
  return {
    ...USER,
    workflow_type: "chat_interaction",
    workflow_name: "chat",
    session_id: "s-1",
    chat_id: "c-1",
    agent_usage: { Agent: { prompt_tokens: tokens, completion_tokens: 0 } },
    occurred_at: new Date().toISOString(),
  };
}

describe("SDK holds in mock mode (the core decides in process)", () => {
  it("reserve grants within the budget and denies past it with the reason and what is available", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const first = await meter.reserve({ ...USER, chat_id: "c-1", tokens: 6_000, hold_id: "turn-1" });
    assert.equal(first.granted, true);
    assert.equal(first.hold_id, "turn-1");
    assert.equal(first.available, 4_000);
    const second = await meter.reserve({ ...USER, chat_id: "c-1", tokens: 5_000 });
    assert.equal(second.granted, false);
    assert.equal(second.reason, "insufficient_tokens");
    assert.equal(second.available, 4_000);
    assert.match(second.hold_id, /^[0-9a-f-]{36}$/, "a hold id is generated");
    assert.equal((await meter.budget(USER)).state.held_tokens, 6_000);
    await meter.close();
  });

  it("settle bills the actual usage and frees the rest; release gives a hold back", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const hold = await meter.reserve({ ...USER, chat_id: "c-1", tokens: 6_000 });
    await meter.settle(hold.hold_id, settleUsage(1_500));
    const account = await meter.account(USER);
    assert.equal(account?.tokens_used, 1_500);
    assert.equal(heldTokens(account!), 0);
    const events = meter.mock!.outputs.filter((o) => o.kind === "budget_event").map((o) => o.event);
    assert.deepEqual(events, ["hold_settled"]);

    const other = await meter.reserve({ ...USER, chat_id: "c-1", tokens: 8_000 });
    assert.equal(other.granted, true);
    await meter.release({ ...USER, hold_id: other.hold_id });
    assert.equal((await meter.budget(USER)).state.held_tokens, 0);
    assert.equal((await meter.account(USER))?.tokens_used, 1_500, "a release bills nothing");
    await meter.close();
  });

  it("50 concurrent turns on a budget that covers 10: exactly 10 are granted, each settles, nothing stays held", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, SESSION);
    await manager.initializeBudget();
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, () =>
        manager.withHold(1_000, async () => ({ Agent: { prompt_tokens: 600, completion_tokens: 400 } })),
      ),
    );
    const granted = results.filter((result) => result.status === "fulfilled");
    const denied = results.filter(
      (result) => result.status === "rejected" && isAgentmeterError(result.reason, "HOLD_DENIED"),
    );
    // Every reserve is applied as it is sent, so all 50 are decided before any turn settles: the 10
    // granted holds take the 10,000 and the other 40 find nothing available.
    const kinds = meter.mock!.outputs.map((output) => output.kind).filter((kind) => kind !== "session_event");
    assert.deepEqual(kinds.slice(0, 50), Array(50).fill("hold_decision"));
    assert.equal(granted.length, 10);
    assert.equal(denied.length, 40);
    const state = (await manager.budgetStatus()).state;
    assert.equal(state.held_tokens, 0);
    assert.equal(state.available_tokens, 0);
    await meter.close();
  });

  it("withHold releases the hold when the turn throws, and does not run the turn when denied", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new TokenManager(meter, SESSION);
    await assert.rejects(
      manager.withHold(2_000, async () => {
        throw new Error("LLM down");
      }),
      /LLM down/,
    );
    assert.equal((await manager.budgetStatus()).state.held_tokens, 0);
    const released = meter.mock!.outputs.filter(
      (o) => o.kind === "budget_event" && o.event === "hold_released",
    );
    assert.equal(released.length, 1);

    let ran = false;
    await assert.rejects(
      manager.withHold(50_000, async () => {
        ran = true;
        return {};
      }),
      (error: unknown) =>
        isAgentmeterError(error, "HOLD_DENIED") &&
        error.details?.reason === "insufficient_tokens" &&
        error.details?.available === 10_000,
    );
    assert.equal(ran, false);
    await meter.close();
  });

  it("a platform manager holds on the creator's allowance; a settle records the usage on its chat", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const manager = new PlatformTokenManager(meter, {
      enterprise_id: "app-1",
      mozaiks_user_id: "creator-1",
      workflow_name: "Generator",
    });
    const hold = await manager.reserve(4_000);
    assert.equal(hold.granted, true);
    assert.equal(hold.available, 1_000);
    const receipt = await manager.settle(hold.hold_id, {
      ConceptAgent: { prompt_tokens: 2_000, completion_tokens: 500 },
    });
    assert.equal(receipt.tokens_used, 2_500);
    assert.equal(manager.sessionUsage.total_tokens, 2_500);
    const status = await manager.budgetStatus();
    assert.equal(status.state.held_tokens, 0);
    assert.equal(status.available_tokens, 2_500);
    await meter.close();
  });

  it("a hold not settled expires at the account's next record past it, or at a tick", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    const now = Date.now();
    const hold = await meter.reserve({
      ...USER,
      chat_id: "c-1",
      tokens: 3_000,
      occurred_at: new Date(now).toISOString(),
      ttl_ms: 1_000,
    });
    assert.equal(hold.expires_at, new Date(now + 1_000).toISOString());
    assert.deepEqual(meter.mock!.tick(new Date(now + 1_000).toISOString()), [], "not past it yet");
    const expired = meter.mock!.tick(new Date(now + 1_001).toISOString());
    assert.deepEqual(
      expired.map((o) => o.kind === "budget_event" && o.event),
      ["hold_expired"],
    );
    assert.equal((await meter.budget(USER)).state.held_tokens, 0);
    const again = await meter.reserve({ ...USER, chat_id: "c-1", tokens: 1, hold_id: hold.hold_id });
    assert.equal(again.granted, false);
    assert.equal(again.reason, "hold_id_ended");
    await meter.close();
  });

  it("a bad hold is refused before sending", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    await assert.rejects(meter.reserve({ ...USER, chat_id: "c-1", tokens: 0 }), (error: unknown) =>
      isAgentmeterError(error, "RECORD_INVALID"),
    );
    assert.equal(meter.mock!.outputs.length, 0);
    await meter.close();
  });
});

describe("SDK holds over Kafka", () => {
  it("reserve takes only hold records, refused before anything is sent", async () => {
    // The backend's connect needs a broker; a refused reserve touches none of its clients.
    const backend = Object.create(KafkaBackend.prototype) as KafkaBackend;
    const prepared = prepareRecord({
      type: "release",
      ...USER,
      hold_id: "turn-1",
      occurred_at: "2025-01-01T00:00:00Z",
    });
    await assert.rejects(backend.reserve(prepared, 1_000), (error: unknown) =>
      isAgentmeterError(error, "RECORD_INVALID"),
    );
  });

  it("replies: only a decision someone waits for is validated and resolves; others and broken ones are ignored", async () => {
    const meter = await Agentmeter.connect({ mock: true, billing });
    await meter.reserve({ ...USER, chat_id: "c-1", tokens: 1_000, hold_id: "turn-1" });
    await meter.reserve({ ...USER, chat_id: "c-1", tokens: 1_000, hold_id: "turn-2" });
    const [mine, other] = meter.mock!.outputs.filter((o) => o.kind === "hold_decision");
    await meter.close();
    assert.ok(mine !== undefined && other !== undefined);

    const replies = new HoldReplies({} as never, "holds", "test", createLogger("silent"));
    const internals = replies as unknown as {
      hear(value: Buffer | null): void;
      waiting: Map<string, unknown>;
    };
    const hear = (value: unknown) => internals.hear(Buffer.from(JSON.stringify(value)));
    const answer = replies.wait(mine.account_key, mine.record_id, mine.hold_id, 2_000);
    hear(other);
    internals.hear(Buffer.from("not json"));
    hear({ granted: true });
    hear({ ...mine, granted: "yes" });
    assert.equal(internals.waiting.size, 1, "still waiting after another's, unreadable and broken decisions");
    hear(mine);
    assert.deepEqual(await answer, mine);
    assert.equal(internals.waiting.size, 0);
    hear(mine); // a repeat (a processor re-applying a batch) finds nobody waiting
  });

  it("a decision that does not come in time is HOLD_TIMEOUT, never a grant", async () => {
    // Waiting needs no broker: the consumer that would resolve it is never started here.
    const replies = new HoldReplies({} as never, "holds", "test", createLogger("silent"));
    await assert.rejects(replies.wait("app:a:u", "r-1", "turn-1", 20), (error: unknown) =>
      isAgentmeterError(error, "HOLD_TIMEOUT"),
    );
  });
});

describe("withHold when the settle's send fails (runHeld)", () => {
  const grant = { granted: true, hold_id: "h-1" } as HoldGrant;
  const record = { type: "usage", record_id: "u-1" } as unknown as InputRecord;
  const unsent = (id: string) =>
    new AgentmeterError("PRODUCE_FAILED", `record ${id}: broker down`, {
      details: { record_id: id, record },
    });
  function run(options: { settle: () => Promise<string>; resends: Array<() => Promise<string>> }) {
    const calls = { released: 0, resent: [] as InputRecord[], waited: [] as number[] };
    const result = runHeld(
      async () => grant,
      async () => "usage",
      options.settle,
      async () => {
        calls.released++;
      },
      async (again) => {
        calls.resent.push(again);
        return options.resends.shift()!();
      },
      async (ms) => {
        calls.waited.push(ms);
      },
    );
    return { result, calls };
  }

  it("sends the same record again, never releases, and answers what the resend answered", async () => {
    const { result, calls } = run({
      settle: () => Promise.reject(unsent("u-1")),
      resends: [() => Promise.reject(unsent("u-1")), async () => "sent"],
    });
    assert.deepEqual(await result, { hold: grant, settled: "sent" });
    assert.deepEqual(calls.resent, [record, record], "the very record of the failed send, twice");
    assert.equal(calls.released, 0, "the turn spent its tokens: nothing is given back");
    assert.deepEqual(calls.waited, [SETTLE_RESEND_DELAYS_MS[0], SETTLE_RESEND_DELAYS_MS[1]]);
  });

  it("after every resend failed, throws the last PRODUCE_FAILED naming the record, still without a release", async () => {
    const { result, calls } = run({
      settle: () => Promise.reject(unsent("u-1")),
      resends: SETTLE_RESEND_DELAYS_MS.map(() => () => Promise.reject(unsent("u-1"))),
    });
    await assert.rejects(result, (error: unknown) => {
      assert.ok(isAgentmeterError(error, "PRODUCE_FAILED"));
      assert.equal((error.details as { record: InputRecord }).record, record);
      return true;
    });
    assert.equal(calls.resent.length, SETTLE_RESEND_DELAYS_MS.length);
    assert.equal(calls.released, 0);
  });

  it("a settle refused before sending (nothing on the topic) releases the hold and is not resent", async () => {
    const { result, calls } = run({
      settle: () => Promise.reject(new AgentmeterError("UNKNOWN_MODEL", "model x has no price")),
      resends: [],
    });
    await assert.rejects(result, (error: unknown) => isAgentmeterError(error, "UNKNOWN_MODEL"));
    assert.equal(calls.released, 1);
    assert.deepEqual(calls.resent, []);
  });
});
