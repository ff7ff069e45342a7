import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Producer } from "kafkajs";
import pino from "pino";
import { creditAuthorization } from "../../pipeline/auth/signature.ts";
import { ProcessorMetrics } from "../../pipeline/ops/metrics.ts";
import { TickClock } from "../../pipeline/processor/tick-clock.ts";

/** The one producer call TickClock makes, answered as a broker refusing the write would. */
function refusingProducer(): Producer {
  return {
    send: async () => {
      throw Object.assign(new Error("Not authorized to access topics: [usage]"), {
        type: "TOPIC_AUTHORIZATION_FAILED",
      });
    },
  } as unknown as Producer;
}

describe("tick clock: a tick that cannot be written is counted", () => {
  it("each failed interval calls onFailure once, the metric counts it, and nothing is counted as sent", async () => {
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    const clock = new TickClock({
      producer: refusingProducer(),
      topic: "usage",
      intervalMs: 0,
      creditPolicy: creditAuthorization({}),
      targets: () => ({ partitions: [0, 1], partitionCount: 2 }),
      logger: pino({ level: "silent" }),
      onFailure: () => metrics.tickFailed(),
    });
    await clock.tick(new Date("2026-12-07T00:00:00Z"));
    await clock.tick(new Date("2026-12-07T00:00:05Z"));
    assert.equal(clock.sent, 0);
    const text = await metrics.registry.metrics();
    assert.match(text, /^agentmeter_tick_write_failures_total 2$/m);
  });
});
