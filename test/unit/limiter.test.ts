import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { chunked } from "../../sinks/mongo/bulk.ts";
import { Limiter } from "../../sinks/mongo/limiter.ts";

describe("Limiter: write statements in flight", () => {
  it("never lets the weights in flight exceed the cap, and runs every task", async () => {
    const limiter = new Limiter(10);
    let inFlight = 0;
    let highest = 0;
    const done: number[] = [];
    const weights = [4, 7, 1, 3, 10, 2, 6, 1, 1, 5];
    await limiter.all(
      weights.map((weight, index) => ({
        weight,
        run: async () => {
          inFlight += weight;
          highest = Math.max(highest, inFlight);
          await sleep(1 + (index % 3));
          inFlight -= weight;
          done.push(index);
        },
      })),
    );
    assert.ok(highest <= 10, `at most 10 in flight, saw ${highest}`);
    assert.ok(highest > 7, `tasks overlapped (saw ${highest})`);
    assert.deepEqual(
      [...done].sort((a, b) => a - b),
      weights.map((_, index) => index),
    );
  });

  it("serves waiting tasks in arrival order: a heavy task is not overtaken by later light ones", async () => {
    const limiter = new Limiter(4);
    const order: string[] = [];
    const task = (name: string, ms: number) => async () => {
      order.push(`start ${name}`);
      await sleep(ms);
    };
    await Promise.all([
      limiter.run(task("a", 5), 3),
      limiter.run(task("heavy", 1), 4),
      limiter.run(task("light", 1), 1),
    ]);
    assert.deepEqual(order, ["start a", "start heavy", "start light"]);
  });

  it("caps a task heavier than the limit at the limit instead of waiting for ever", async () => {
    const limiter = new Limiter(2);
    assert.equal(await limiter.run(async () => "ran", 50), "ran");
  });

  it("throws the first failure after every task has settled", async () => {
    const limiter = new Limiter(3);
    let finished = 0;
    await assert.rejects(
      limiter.all([
        async () => {
          throw new Error("boom");
        },
        async () => {
          await sleep(5);
          finished++;
        },
      ]),
      /boom/,
    );
    assert.equal(finished, 1);
  });
});

describe("chunked", () => {
  it("splits into runs of at most the size, keeping order", () => {
    assert.deepEqual(chunked([1, 2, 3, 4, 5], 2), [[1, 2], [3, 4], [5]]);
    assert.deepEqual(chunked([], 16), []);
  });
});
