import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import { type BudgetEvent, budgetEventSchema, type InputRecordJson } from "../../schemas/index.ts";
import { workflowAverages } from "../../sinks/clickhouse/workflow-averages.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";

const ids = {
  level: "app_usage" as const,
  enterprise_id: "costapp",
  mozaiks_user_id: "creator-1",
  platform_user_id: "user-1",
};

type CostThreshold = Extract<BudgetEvent, { event: "cost_threshold" }>;

function session(
  n: number,
  promptTokens: number,
  at: number,
  who: { platform_user_id: string; chat_id?: string; finalize?: boolean } = ids,
): InputRecordJson[] {
  const user = { ...ids, platform_user_id: who.platform_user_id };
  const chat = { ...user, session_id: `s${n}`, chat_id: who.chat_id ?? `c${n}`, workflow_name: "support" };
  const time = (offset: number) => new Date(Date.UTC(2026, 10, 1, 9, 0, at + offset)).toISOString();
  return [
    { type: "session", record_id: `r${n}-start`, event: "start", ...chat, occurred_at: time(0) },
    {
      type: "usage",
      record_id: `r${n}-use`,
      ...user,
      workflow_type: "chat_interaction",
      workflow_name: "support",
      session_id: chat.session_id,
      chat_id: chat.chat_id,
      agent_usage: { SupportAgent: { prompt_tokens: promptTokens, completion_tokens: 0 } },
      occurred_at: time(1),
    },
    ...((who.finalize ?? n < 4)
      ? [
          {
            type: "session" as const,
            record_id: `r${n}-end`,
            event: "finalize" as const,
            ...chat,
            occurred_at: time(2),
          },
        ]
      : []),
  ];
}

describe("cost thresholds: a session far above its workflow's average raises a budget event", {
  timeout: 3 * 60_000,
}, () => {
  let pipeline: TestPipeline;

  before(async () => {
    pipeline = await TestPipeline.create({
      env: { AGENTMETER_COST_AVERAGES_REFRESH_MS: "500", AGENTMETER_COST_MULTIPLE: "2" },
      // A big credit so that budgets play no part here.
      billing: parseBillingConfig({ app_trial_tokens: { default: 10_000_000 } }),
    });
    await pipeline.startProcessor();
  });

  after(async () => {
    await pipeline?.close();
  });

  async function costEvents(
    group: string,
    enough: (found: CostThreshold[]) => boolean,
  ): Promise<CostThreshold[]> {
    const { config } = pipeline;
    const consumer = pipeline.kafka().consumer({ groupId: `${config.AGENTMETER_GROUP_ID}-${group}` });
    const events: BudgetEvent[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic: config.AGENTMETER_EVENTS_TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const parsed = JSON.parse(message.value!.toString("utf8"), (key, value) =>
          key.endsWith("_micros") && typeof value === "string" ? BigInt(value) : value,
        );
        events.push(budgetEventSchema.parse(parsed));
      },
    });
    try {
      return await eventually("cost_threshold events", async () => {
        const found = events.filter((event): event is CostThreshold => event.event === "cost_threshold");
        return enough(found) ? found : undefined;
      });
    } finally {
      await consumer.disconnect();
    }
  }

  const finished = [...session(1, 1_000, 0), ...session(2, 1_000, 10), ...session(3, 1_000, 20)];
  const produced: InputRecordJson[] = [];

  it("given three finished sessions of 1,000 tokens, when a fourth runs to 10,000, then cost_threshold is published once", async () => {
    const { config } = pipeline;
    await pipeline.produce(finished);
    produced.push(...finished);
    const clickhouse = clickHouseFor(config);
    const averages = await eventually("three finished sessions in ClickHouse", async () => {
      const found = await workflowAverages(clickhouse, config.CLICKHOUSE_DATABASE, "support", "costapp");
      return found !== null && found.session_count === 3 ? found : undefined;
    });
    await clickhouse.close();
    // Let the processor's cache of averages expire so it sees the three sessions.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await pipeline.produce(session(4, 10_000, 30));
    produced.push(...session(4, 10_000, 30));

    const flagged = await costEvents("events", (found) => found.length > 0);
    assert.equal(flagged.length, 1);
    const event = flagged[0]!;
    assert.ok(event.event === "cost_threshold");
    assert.equal(event.chat_id, "c4");
    assert.equal(event.session_count, 3);
    assert.equal(event.average_cost_micros, averages.total_cost_micros / 3n);
    assert.equal(event.threshold_cost_micros, (averages.total_cost_micros * 2n) / 3n);
    assert.ok(event.current_cost_micros > event.threshold_cost_micros);
    // And the event changed no figure: the stores hold what the billing core computes.
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch(produced);
  });

  it("given another end user's chat also called c4, when it runs to 10,000, then it is flagged too (chat ids are per account)", async () => {
    const other = session(5, 10_000, 40, { platform_user_id: "user-2", chat_id: "c4", finalize: false });
    await pipeline.produce(other);
    produced.push(...other);
    const flagged = await costEvents("events-2", (found) => found.length >= 2);
    assert.deepEqual(flagged.map((event) => [event.platform_user_id, event.chat_id]).sort(), [
      ["user-1", "c4"],
      ["user-2", "c4"],
    ]);
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch(produced);
  });

  it("given a chat called constructor used and finalized in one batch, then its partition goes on billing", async () => {
    // `constructor` is a valid chat id; once the batch has ended the chat, a lookup that does not
    // ignore Object.prototype finds a function and the cost check threw on every retry.
    const tricky = session(6, 10_000, 50, {
      platform_user_id: "user-3",
      chat_id: "constructor",
      finalize: true,
    });
    const after = session(7, 1_000, 60, { platform_user_id: "user-3", chat_id: "c7", finalize: true });
    await pipeline.produce(tricky);
    await pipeline.produce(after);
    produced.push(...tricky, ...after);
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch(produced);
  });
});
