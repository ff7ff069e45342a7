import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig } from "../../pipeline/config.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import { Agentmeter } from "../../sdk/index.ts";

// Never a server: a connection that wrongly tries Kafka fails against this rather than reaching one.
const NO_SERVER = { KAFKA_BROKERS: "127.0.0.1:1", LOG_LEVEL: "silent" };

/** connect() must refuse with CONFIG_INVALID in one line starting with `prefix`. */
async function refusesConnect(options: Parameters<typeof Agentmeter.connect>[0], prefix: string) {
  const started = Date.now();
  await assert.rejects(Agentmeter.connect({ viewReadyTimeoutMs: 1_000, ...options }), (error: unknown) => {
    assert.ok(isAgentmeterError(error, "CONFIG_INVALID"), String(error));
    assert.ok(error.message.startsWith(prefix), error.message);
    assert.equal(error.message.split("\n").length, 1, "one line");
    return true;
  });
  assert.ok(Date.now() - started < 1_000, "refused at once, before any connection");
}

describe("SDK switches AGENTMETER_MOCK and AGENTMETER_STRICT", () => {
  it("take 1/true (and 0/false, unset); any other value fails connect at once naming the variable", async () => {
    for (const on of ["1", "true"]) {
      const meter = await Agentmeter.connect({ env: { ...NO_SERVER, AGENTMETER_MOCK: on } });
      assert.equal(meter.mode, "mock");
      await meter.close();
    }
    for (const bad of ["TRUE", "yes", "on", " 1"])
      await refusesConnect(
        { env: { ...NO_SERVER, AGENTMETER_MOCK: bad } },
        `config: AGENTMETER_MOCK=${JSON.stringify(bad)} is invalid: expected "true" or "false"`,
      );
    await refusesConnect(
      { env: { ...NO_SERVER, AGENTMETER_MOCK: "1", AGENTMETER_STRICT: "yes" } },
      'config: AGENTMETER_STRICT="yes" is invalid',
    );
  });
});

describe("SDK connect({ config }) overrides", () => {
  it("are checked as the variables they replace, with the same one-line error", async () => {
    const cases: [Record<string, unknown>, string][] = [
      [{ AGENTMETER_MAX_RECORD_BYTES: -1 }, 'config: AGENTMETER_MAX_RECORD_BYTES="-1" is invalid'],
      [{ AGENTMETER_MAX_RECORD_BYTES: "64k" }, 'config: AGENTMETER_MAX_RECORD_BYTES="64k" is invalid'],
      [{ KAFKA_BROKERS: "not-a-list" }, 'config: KAFKA_BROKERS="not-a-list" is invalid: expected host:port'],
      [
        { AGENTMETER_INPUT_TOPIC: "bad topic name!" },
        'config: AGENTMETER_INPUT_TOPIC="bad topic name!" is invalid',
      ],
    ];
    for (const [config, prefix] of cases)
      await refusesConnect({ mock: true, env: NO_SERVER, config: config as never }, prefix);
  });

  it("take Config's own values (a whole loadConfig result, numbers, lists) and win over the environment", async () => {
    const whole = loadConfig({ AGENTMETER_COST_MULTIPLE: "1.5", KAFKA_BROKERS: "a:1,b:2" });
    const same = await Agentmeter.connect({ mock: true, env: {}, config: whole });
    assert.deepEqual(same.config, whole);
    await same.close();
    const meter = await Agentmeter.connect({
      mock: true,
      env: { ...NO_SERVER, AGENTMETER_MAX_RECORD_BYTES: "64k" },
      config: {
        AGENTMETER_MAX_RECORD_BYTES: 2_048,
        KAFKA_BROKERS: ["h:9092"],
        AGENTMETER_PARTITIONS: undefined,
      },
    });
    assert.equal(meter.config.AGENTMETER_MAX_RECORD_BYTES, 2_048);
    assert.deepEqual(meter.config.KAFKA_BROKERS, ["h:9092"]);
    assert.equal(meter.config.AGENTMETER_PARTITIONS, 6, "undefined means the default");
    await meter.close();
  });
});
