import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Config } from "../../pipeline/config.ts";
import { parseBillingConfig } from "../../pipeline/core/index.ts";
import { Agentmeter } from "../../sdk/index.ts";
import { TestPipeline } from "../support/harness.ts";

const BURST = 100_000;

describe("SDK producer under a burst of 100,000 records (no processor)", () => {
  let pipeline: TestPipeline;
  let config: Config;
  let meter: Agentmeter;

  before(async () => {
    pipeline = await TestPipeline.create();
    config = pipeline.config;
    meter = await Agentmeter.connect({ config, billing: parseBillingConfig({}), strict: true });
  });

  after(async () => {
    await meter?.close().catch(() => undefined);
    await pipeline?.close();
  });

  it("every send resolves once after the broker's ack, close() loses nothing, and the topic holds each record_id exactly once", async () => {
    const acked = new Map<string, number>();
    const sends: Promise<void>[] = [];
    const occurred_at = new Date().toISOString();
    for (let i = 0; i < BURST; i++) {
      const user = `user-${i % 500}`;
      sends.push(
        meter
          .send({
            type: "usage",
            level: "app_usage",
            enterprise_id: `burst-app-${i % 7}`,
            mozaiks_user_id: "burst-creator",
            platform_user_id: user,
            workflow_type: "chat_interaction",
            workflow_name: "chat",
            session_id: `s-${user}`,
            chat_id: `c-${user}`,
            agent_usage: { CustomerAgent: { prompt_tokens: 10 + (i % 90), completion_tokens: 5 } },
            occurred_at,
          })
          .then((sent) => {
            acked.set(sent.record_id, (acked.get(sent.record_id) ?? 0) + 1);
          }),
      );
    }
    // close() without awaiting the sends first: whatever was accepted must still go out and be acked.
    const started = Date.now();
    await meter.close();
    await Promise.all(sends);
    const seconds = (Date.now() - started) / 1000;
    console.log(
      `burst: ${BURST} records acked in ${seconds.toFixed(1)} s (${Math.round(BURST / seconds)}/s)`,
    );
    assert.equal(acked.size, BURST, "one distinct generated record_id per send");
    assert.ok(
      [...acked.values()].every((count) => count === 1),
      "every send resolved exactly once",
    );
    assert.equal(meter.stats().acked, BURST);
    await assert.rejects(
      meter.send({
        type: "credit",
        kind: "grant",
        level: "platform",
        enterprise_id: "x",
        mozaiks_user_id: "x",
        tokens: 1,
        occurred_at,
      }),
      /closed/,
    );

    // Read the whole topic back: every acked id once, nothing else.
    const kafka = pipeline.kafka();
    const admin = kafka.admin();
    await admin.connect();
    const offsets = await admin.fetchTopicOffsets(config.AGENTMETER_INPUT_TOPIC);
    await admin.disconnect();
    const total = offsets.reduce((sum, partition) => sum + Number(partition.high) - Number(partition.low), 0);
    assert.equal(total, BURST, "messages on the topic");
    const seen = new Set<string>();
    let messages = 0;
    const consumer = kafka.consumer({ groupId: `${config.AGENTMETER_GROUP_ID}-burst-reader` });
    await consumer.connect();
    await consumer.subscribe({ topic: config.AGENTMETER_INPUT_TOPIC, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer
        .run({
          eachBatch: async ({ batch }) => {
            for (const message of batch.messages) {
              messages++;
              seen.add((JSON.parse(message.value!.toString()) as { record_id: string }).record_id);
            }
            if (messages >= BURST) resolve();
          },
        })
        .catch(reject);
    });
    await consumer.disconnect();
    assert.equal(messages, BURST);
    assert.equal(seen.size, BURST);
    for (const id of acked.keys()) assert.ok(seen.has(id), `acked ${id} is on the topic`);
  });
});
