import assert from "node:assert/strict";
import { describe, test } from "node:test";
import pino from "pino";
import { AgentmeterError } from "../../pipeline/errors.ts";
import { ProcessorMetrics } from "../../pipeline/ops/metrics.ts";
import { retryStores } from "../../pipeline/processor/store-retry.ts";

const logger = pino({ level: "silent" });

class MongoNetworkError extends Error {
  override name = "MongoNetworkError";
}

/** A store call that fails `failures` times with `error`, then answers. */
function flaky(failures: number, error: () => Error) {
  const calls = { count: 0 };
  return {
    calls,
    action: async () => {
      calls.count++;
      if (calls.count <= failures) throw error();
      return "written";
    },
  };
}

async function counted(metrics: ProcessorMetrics, name: string): Promise<number> {
  const text = await metrics.registry.metrics();
  const line = text.split("\n").find((l) => l.startsWith(`${name}{store="mongodb"}`));
  return Number(line?.split(" ")[1] ?? 0);
}

const retriesCounted = (metrics: ProcessorMetrics) => counted(metrics, "agentmeter_store_retries_total");
const errorsCounted = (metrics: ProcessorMetrics) => counted(metrics, "agentmeter_store_errors_total");

const ours = { stillOurs: () => true, stopping: () => false };

describe("retryStores: a failing store is retried while the work is ours", () => {
  test("Given a store that fails twice, Then the third attempt's answer is returned and two retries are counted", async () => {
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    const store = flaky(2, () => new MongoNetworkError("connection reset"));
    assert.equal(await retryStores(store.action, ours, { metrics, logger }), "written");
    assert.equal(store.calls.count, 3);
    assert.equal(await retriesCounted(metrics), 2);
    assert.equal(await errorsCounted(metrics), 2);
  });

  test("Given a refusal a retry cannot cure, Then it is thrown at once and counted as an error, not a retry", async () => {
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    // MongoDB's document-too-large: deterministic (store-errors.ts).
    const tooLarge = Object.assign(new Error("object to insert too large"), {
      name: "MongoServerError",
      code: 10334,
    });
    const store = flaky(5, () => tooLarge);
    await assert.rejects(retryStores(store.action, ours, { metrics, logger }));
    assert.equal(store.calls.count, 1);
    assert.equal(await errorsCounted(metrics), 1);
    assert.equal(await retriesCounted(metrics), 0);
  });

  test("Given lost ownership, a partition no longer ours, or a stopping processor, Then the first failure is thrown", async () => {
    const cases = [
      { scope: ours, error: () => new AgentmeterError("OWNERSHIP_LOST", "revoked") },
      { scope: { ...ours, stillOurs: () => false }, error: () => new MongoNetworkError("reset") },
      { scope: { ...ours, stopping: () => true }, error: () => new MongoNetworkError("reset") },
    ];
    for (const { scope, error } of cases) {
      const metrics = new ProcessorMetrics({ defaultMetrics: false });
      const store = flaky(5, error);
      await assert.rejects(retryStores(store.action, scope, { metrics, logger }));
      assert.equal(store.calls.count, 1);
      assert.equal(await retriesCounted(metrics), 0);
      // A failed store call not retried is still an error; lost ownership is no store failing.
      assert.equal(await errorsCounted(metrics), scope === ours ? 0 : 1);
    }
  });

  test("Given a write-behind cycle of a stopping processor, Then it keeps trying (stop waits for it)", async () => {
    const metrics = new ProcessorMetrics({ defaultMetrics: false });
    const store = flaky(1, () => new MongoNetworkError("reset"));
    const scope = { ...ours, stopping: () => true, evenWhileStopping: true };
    assert.equal(await retryStores(store.action, scope, { metrics, logger }), "written");
    assert.equal(store.calls.count, 2);
  });
});
