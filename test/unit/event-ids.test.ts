import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyBatch, type BillingState, emptyState } from "../../pipeline/core/index.ts";
import {
  type BudgetEvent,
  budgetEventIdOf,
  holdRecordSchema,
  type InputRecord,
  type TopicRecord,
  tickRecordSchema,
} from "../../schemas/index.ts";
import { APP_IDS, at, config, credit, usage } from "./builders.ts";

/**
 * Consumers of the events topic deduplicate on `agentmeter-event-id`. Before budgetEventIdOf the id was
 * `{record_id}:{event}`, and one record can raise several events of a kind: a consumer that deduplicated
 * dropped all but one of them.
 */
function events(records: readonly TopicRecord[], state: BillingState = emptyState(), cfg = config()) {
  const result = applyBatch(
    state,
    records.map((record, seq) => ({ record, seq })),
    cfg,
  );
  const raised = result.outputs.filter(
    (output): output is BudgetEvent & { seq?: number } => output.kind === "budget_event",
  );
  return { state: result.state, raised };
}

function assertDistinct(raised: readonly BudgetEvent[], kind: BudgetEvent["event"], atLeast: number): void {
  const ofKind = raised.filter((event) => event.event === kind);
  assert.ok(ofKind.length >= atLeast, `${ofKind.length} ${kind} events, wanted ${atLeast} or more`);
  const ids = ofKind.map(budgetEventIdOf);
  assert.equal(new Set(ids).size, ids.length, `${kind}: ${ids.join(", ")}`);
  assert.equal(new Set(ofKind.map((event) => event.record_id)).size, 1, `${kind}: raised by one record`);
}

const spend = (chat: string, minute: number, tokens: number): InputRecord =>
  usage({
    record_id: `u-${chat}-${minute}`,
    chat_id: chat,
    occurred_at: at(minute),
    agent_usage: { Agent: { prompt_tokens: tokens, completion_tokens: 0 } },
  });

describe("budget event ids: one per event, the same for a republished event", () => {
  it("given two chats paused out of tokens, when one credit makes both resumable, then the two resumable events have two ids", () => {
    // 10,000 trial tokens: chat a exhausts them, chat b is paused on its first record.
    const { state } = events([spend("a", 0, 10_000), spend("b", 1, 500)]);
    const { raised } = events([credit({ record_id: "c-topup", tokens: 50_000, occurred_at: at(2) })], state);
    assertDistinct(raised, "resumable", 2);
  });

  it("given a tick past the expiry of holds on two accounts, then the two hold_expired events have two ids", () => {
    const hold = (user: string) =>
      holdRecordSchema.parse({
        type: "hold",
        record_id: `h-${user}`,
        ...APP_IDS,
        platform_user_id: user,
        chat_id: "chat-1",
        hold_id: "same-hold-id",
        tokens: 100,
        occurred_at: at(0),
        expires_at: at(1),
      });
    const tick = tickRecordSchema.parse({
      type: "tick",
      record_id: "tick-5",
      partition: 0,
      occurred_at: at(5),
    });
    const { raised } = events([hold("u1"), hold("u2"), tick]);
    assertDistinct(raised, "hold_expired", 2);
  });

  it("given one record crossing two thresholds, then the two threshold_reached events have two ids", () => {
    const { raised } = events(
      [spend("a", 0, 9_500)],
      emptyState(),
      config({ thresholds_bp: [5_000, 9_000] }),
    );
    assertDistinct(raised, "threshold_reached", 2);
  });

  it("given two grants that expire before one record, then the two grant_expired events have two ids", () => {
    const grant = (id: string) =>
      credit({
        record_id: id,
        kind: "grant",
        tokens: 100,
        priority: 0,
        occurred_at: at(0),
        expires_at: at(2),
      });
    const { raised } = events([grant("g-1"), grant("g-2"), spend("a", 5, 10)]);
    assertDistinct(raised, "grant_expired", 2);
  });

  it("given ids that hold the separator, then two events of two accounts never share an id, and ids without it are as before", () => {
    const exhausted = (recordId: string, user: string, chatId: string) =>
      ({
        kind: "budget_event",
        event: "exhausted",
        schema_version: 1,
        record_id: recordId,
        account_key: `platform:${user}`,
        level: "platform",
        enterprise_id: "app_1",
        mozaiks_user_id: user,
        platform_user_id: null,
        occurred_at: at(0),
        chat_id: chatId,
      }) as unknown as BudgetEvent;
    const a = budgetEventIdOf(exhausted("r", "u", "c:exhausted:platform:v:c2"));
    const b = budgetEventIdOf(exhausted("r:exhausted:platform:u:c", "v", "c2"));
    assert.notEqual(a, b);
    assert.equal(budgetEventIdOf(exhausted("r-1", "u", "chat-1")), "r-1:exhausted:platform:u:chat-1");
  });

  it("given the same event applied twice (a crash re-applies the records after the last commit), then its id is the same", () => {
    const records = [spend("a", 0, 10_000), spend("b", 1, 500)];
    const once = events(records).raised.map(budgetEventIdOf);
    const again = events(records).raised.map(budgetEventIdOf);
    assert.ok(once.length > 0);
    assert.deepEqual(again, once);
  });
});
