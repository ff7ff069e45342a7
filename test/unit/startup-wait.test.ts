import assert from "node:assert/strict";
import { describe, test } from "node:test";
import pino from "pino";
import { AgentmeterError, isAgentmeterError } from "../../pipeline/errors.ts";
import { untilAvailable } from "../../pipeline/processor/startup-wait.ts";

/** A clock that moves only when the step waits, so the backoff and the deadline are exact. */
function clock() {
  let now = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => now,
    pause: async (ms: number) => {
      waits.push(ms);
      now += ms;
    },
  };
}

const logger = pino({ level: "silent" });
const refused = () =>
  Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:18123"), { code: "ECONNREFUSED" });

describe("untilAvailable: a start step waits for its server", () => {
  test("Given a server that answers on the fourth try, Then the step succeeds after waiting with a doubling backoff", async () => {
    const c = clock();
    let calls = 0;
    const result = await untilAvailable(
      "clickhouse migrations",
      async () => {
        calls++;
        if (calls < 4) throw refused();
        return [1, 2];
      },
      { deadlineMs: 60_000, stopping: () => false, logger, ...c },
    );
    assert.deepEqual(result, [1, 2]);
    assert.deepEqual(c.waits, [250, 500, 1_000]);
  });

  test("Given a server that never answers, Then the step fails naming itself and the server's error once the deadline has passed", async () => {
    const c = clock();
    await assert.rejects(
      untilAvailable("mongodb", async () => Promise.reject(refused()), {
        deadlineMs: 10_000,
        stopping: () => false,
        logger,
        ...c,
      }),
      (error: unknown) =>
        isAgentmeterError(error, "SERVICE_UNAVAILABLE") &&
        /^mongodb: no answer before the start deadline \(AGENTMETER_STARTUP_WAIT_MS\): .*ECONNREFUSED/.test(
          error.message,
        ),
    );
    assert.equal(
      c.waits.reduce((sum, ms) => sum + ms, 0),
      10_000,
      "it waited exactly up to the deadline, never past it",
    );
    assert.ok(
      c.waits.every((ms) => ms <= 5_000),
      "the backoff is capped",
    );
  });

  test("Given a configuration error, Then it fails at once without waiting", async () => {
    const c = clock();
    await assert.rejects(
      untilAvailable(
        "kafka topics",
        async () => Promise.reject(new AgentmeterError("CONFIG_INVALID", "bad")),
        {
          deadlineMs: 60_000,
          stopping: () => false,
          logger,
          ...c,
        },
      ),
      /bad/,
    );
    assert.deepEqual(c.waits, []);
  });

  test("Given a processor told to stop while it waits, Then the start gives up at the next failure", async () => {
    const c = clock();
    let stopping = false;
    await assert.rejects(
      untilAvailable(
        "mongodb",
        async () => {
          stopping = c.waits.length >= 2;
          throw refused();
        },
        { deadlineMs: 60_000, stopping: () => stopping, logger, ...c },
      ),
      (error: unknown) => error instanceof AgentmeterError && error.code === "SERVICE_UNAVAILABLE",
    );
    assert.equal(c.waits.length, 2);
  });

  test("Given a wait of 0 (AGENTMETER_STARTUP_WAIT_MS=0), Then the first failure ends the start", async () => {
    const c = clock();
    await assert.rejects(
      untilAvailable("mongodb", async () => Promise.reject(refused()), {
        deadlineMs: 0,
        stopping: () => false,
        logger,
        ...c,
      }),
      /ECONNREFUSED/,
    );
    assert.deepEqual(c.waits, []);
  });
});
