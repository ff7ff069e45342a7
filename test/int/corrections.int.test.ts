import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { creatorAppTotals } from "../../pipeline/api/reads/app-totals.ts";
import { clickHouseFor, mongoLayoutFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import {
  type BudgetEvent,
  bigintReplacer,
  budgetEventSchema,
  type InputRecordJson,
} from "../../schemas/index.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { readAppRevenue } from "../../sinks/mongo/read.ts";
import { correctionsOf } from "../support/corrections.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";

/**
 * Voids and refunds through the live pipeline: every figure the billing core computes for them (balances,
 * the accounts' reversed totals, and the creators' RevenueSharing ledgers) is what the stores hold, also
 * when the processor is killed and a successor re-applies what was not committed.
 */

describe("corrections over Kafka: voids and refunds reach balances and creators' ledgers exactly once", {
  timeout: 5 * 60_000,
}, () => {
  let pipeline: TestPipeline;

  before(async () => {
    pipeline = await TestPipeline.create();
  });

  after(async () => {
    await pipeline?.close();
  });

  it("given billed usage, when voids and refunds follow and the processor is killed midway, then every store holds what the core computes", async () => {
    const usage = [
      ...generateWorkload({
        seed: 23,
        records: 3_000,
        apps: 3,
        usersPerApp: 8,
        topUpShare: 0.08,
        runId: "corr",
      }),
    ];
    const corrections = correctionsOf(usage, pipeline.billing);
    assert.ok(corrections.filter((r) => r.type === "void").length >= 10, "the workload bills enough to void");
    assert.ok(corrections.filter((r) => r.type === "refund").length >= 10, "and to refund");
    const records = [...usage, ...corrections];

    const first = pipeline.spawnProcessor("corrections-a");
    await first.started;
    await pipeline.produce(usage);
    await pipeline.caughtUp();
    // Killed while the corrections are applied: its successor re-applies what was not committed.
    await pipeline.produce(corrections);
    await new Promise((resolve) => setTimeout(resolve, 150));
    first.child.kill("SIGKILL");
    await first.exited;
    const second = pipeline.spawnProcessor("corrections-b");
    await second.started;
    await pipeline.caughtUp();

    await pipeline.assertStoresMatch(records);

    // The figures assertStoresMatch compared are not all zero: the ledgers carry the reversals.
    const mongo = createMongo(pipeline.config.MONGODB_URI);
    try {
      await mongo.connect();
      const layout = mongoLayoutFor(mongo, pipeline.config);
      const apps = [...new Set(usage.filter((r) => r.level === "app_usage").map((r) => r.enterprise_id!))];
      const ledgers = await Promise.all(apps.map((app) => readAppRevenue(layout, app)));
      const adjustments = ledgers.reduce((sum, ledger) => sum + ledger.adjustments, 0);
      assert.equal(adjustments, corrections.length, "every void and refund is in a ledger once");
      await assertAdjustmentsInClickHouse(pipeline, usage, ledgers, corrections.length);
      for (const ledger of ledgers) {
        assert.equal(
          ledger.reversed_creator_share_micros + ledger.reversed_platform_fee_micros,
          ledger.reversed_billed_micros,
          `${ledger.enterprise_id}: what was reversed splits exactly`,
        );
        assert.ok(
          ledger.reversed_creator_share_micros < ledger.creator_share_micros,
          "the creator keeps the rest",
        );
      }
    } finally {
      await mongo.close();
    }

    // The events others read are as their schema has it (strict: no processor fields), and two events
    // never share an agentmeter-event-id unless one is the other published again.
    const events = await eventsOnTopic(pipeline);
    assert.ok(
      events.some((e) => e.event.event === "resumable"),
      "the voids made paused chats resumable",
    );
    const byId = new Map<string, string>();
    for (const { id, event } of events) {
      const seen = byId.get(id);
      const body = JSON.stringify(event, bigintReplacer);
      assert.ok(seen === undefined || seen === body, `event id ${id} names two different events`);
      byId.set(id, body);
    }
  });
});

/**
 * ClickHouse's adjustments table holds every correction once (raw rows, not only FINAL, across the
 * kill), and the statements' figures from it (creatorAppTotals) equal the ledgers the core's figures were
 * checked against, app by app.
 */
async function assertAdjustmentsInClickHouse(
  pipeline: TestPipeline,
  usage: readonly InputRecordJson[],
  ledgers: readonly Awaited<ReturnType<typeof readAppRevenue>>[],
  corrections: number,
): Promise<void> {
  const clickhouse = clickHouseFor(pipeline.config);
  try {
    const database = pipeline.config.CLICKHOUSE_DATABASE;
    const raw = await clickhouse.query({
      query: `SELECT count() AS n FROM \`${database}\`.adjustments`,
      format: "JSONEachRow",
    });
    const [row] = await raw.json<{ n: string }>();
    assert.equal(Number(row?.n), corrections, "one adjustments row per correction, none twice");
    const creators = [
      ...new Set(usage.filter((r) => r.level === "app_usage").map((r) => r.mozaiks_user_id!)),
    ];
    const totals = new Map(
      (await Promise.all(creators.map((c) => creatorAppTotals(clickhouse, database, c)))).flatMap((m) => [
        ...m,
      ]),
    );
    for (const ledger of ledgers) {
      const app = totals.get(ledger.enterprise_id);
      assert.ok(app !== undefined, `${ledger.enterprise_id} in ClickHouse`);
      assert.deepEqual(
        [
          app.adjustments,
          app.reversed_billed_micros,
          app.reversed_creator_share_micros,
          app.reversed_platform_fee_micros,
        ],
        [
          ledger.adjustments,
          ledger.reversed_billed_micros,
          ledger.reversed_creator_share_micros,
          ledger.reversed_platform_fee_micros,
        ],
        `${ledger.enterprise_id}: ClickHouse's adjustments agree with the ledger`,
      );
    }
  } finally {
    await clickhouse.close();
  }
}

/** Every message of the events topic, parsed by budgetEventSchema, with its agentmeter-event-id. */
async function eventsOnTopic(pipeline: TestPipeline): Promise<{ id: string; event: BudgetEvent }[]> {
  const admin = pipeline.kafka().admin();
  await admin.connect();
  const topic = pipeline.config.AGENTMETER_EVENTS_TOPIC;
  const ends = await admin.fetchTopicOffsets(topic).finally(() => admin.disconnect());
  const total = ends.reduce((sum, p) => sum + Number(p.high), 0);
  const found: { id: string; event: BudgetEvent }[] = [];
  const refused: string[] = [];
  const consumer = pipeline.kafka().consumer({ groupId: `events-read-${Date.now()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const parsed = JSON.parse(message.value?.toString("utf8") ?? "null", (key, value) =>
          key.endsWith("_micros") && typeof value === "string" ? BigInt(value) : value,
        );
        const event = budgetEventSchema.safeParse(parsed);
        // A refused event is kept as a failure to report, not thrown (kafkajs would redeliver it forever).
        if (!event.success) refused.push(`${event.error.message}: ${message.value?.toString("utf8")}`);
        else found.push({ id: String(message.headers?.["agentmeter-event-id"] ?? ""), event: event.data });
      },
    });
    await eventually(`all ${total} events read`, async () =>
      found.length + refused.length >= total ? true : undefined,
    );
  } finally {
    await consumer.disconnect();
  }
  assert.deepEqual(refused.slice(0, 3), [], `${refused.length} events do not parse as budget events`);
  return found;
}
