import assert from "node:assert/strict";
import { describe, it, mock } from "node:test";
import { within } from "../../pipeline/processor/deadline.ts";

/** The timers `within` starts and clears, seen through the global functions it calls. */
function watchTimers() {
  const started = mock.method(globalThis, "setTimeout");
  const cleared = mock.method(globalThis, "clearTimeout");
  return {
    timer: () => started.mock.calls[0]?.result as NodeJS.Timeout,
    cleared: () => cleared.mock.calls.map((call) => call.arguments[0]),
    restore: () => {
      started.mock.restore();
      cleared.mock.restore();
    },
  };
}

describe("within: whether a promise settles before a deadline", () => {
  it("given a promise that settles in time, then true at once, and the timer is unref'd and cleared", async () => {
    const timers = watchTimers();
    try {
      const started = Date.now();
      assert.equal(await within(new Promise((resolve) => setImmediate(resolve)), 5_000), true);
      assert.ok(Date.now() - started < 1_000, "no wait for the deadline");
      assert.equal(timers.timer().hasRef(), false, "a deadline alone keeps no process alive");
      assert.ok(timers.cleared().includes(timers.timer()), "the timer is cleared once the promise settled");
    } finally {
      timers.restore();
    }
  });

  it("given a promise that rejects in time, then true (it settled)", async () => {
    assert.equal(await within(Promise.reject(new Error("refused")), 5_000), true);
  });

  it("given a promise that never settles, then false after the deadline, and the timer is unref'd", async () => {
    const timers = watchTimers();
    // The deadline's timer keeps no process alive: without this the test's event loop would end first.
    const alive = setInterval(() => undefined, 1_000);
    try {
      const started = Date.now();
      assert.equal(await within(new Promise(() => undefined), 50), false);
      assert.ok(Date.now() - started >= 45, `false after ${Date.now() - started} ms, before the deadline`);
      assert.equal(timers.timer().hasRef(), false);
    } finally {
      clearInterval(alive);
      timers.restore();
    }
  });

  it("given a promise that settles after the deadline, then false", async () => {
    const late = new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(await within(late, 20), false);
    await late;
  });
});
