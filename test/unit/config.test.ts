import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadServeConfig } from "../../pipeline/api/config.ts";
import { loadConfig, wholeNumber } from "../../pipeline/config.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";

type Env = Record<string, string>;

/** The one line a refused environment fails with. */
function refusal(load: (env: Env) => unknown, env: Env): string {
  try {
    load(env);
  } catch (error) {
    assert.ok(isAgentmeterError(error, "CONFIG_INVALID"), String(error));
    return error.message;
  }
  assert.fail(`expected CONFIG_INVALID for ${JSON.stringify(env)}`);
}

describe("numeric configuration variables", () => {
  it("take decimal digits only: blank, hex and exponents are refused with one line naming the variable", () => {
    const cases: [Env, string][] = [
      [
        { AGENTMETER_API_PORT: " " },
        'AGENTMETER_API_PORT=" " is invalid: expected a whole number from 0 to 65535',
      ],
      [{ AGENTMETER_API_PORT: "0x1F90" }, 'AGENTMETER_API_PORT="0x1F90" is invalid: expected a whole number'],
      [{ AGENTMETER_API_PORT: "8e3" }, 'AGENTMETER_API_PORT="8e3" is invalid: expected a whole number'],
      [{ AGENTMETER_API_PORT: " 8080" }, 'AGENTMETER_API_PORT=" 8080" is invalid'],
      [
        { AGENTMETER_API_MAX_BATCH: "1e3" },
        'AGENTMETER_API_MAX_BATCH="1e3" is invalid: expected a whole number from 1 to 100000',
      ],
      [
        { AGENTMETER_METRICS_PORT: " " },
        'AGENTMETER_METRICS_PORT=" " is invalid: expected a whole number from 0 to 65535',
      ],
      [
        { AGENTMETER_STARTUP_WAIT_MS: "\t" },
        'AGENTMETER_STARTUP_WAIT_MS="\\t" is invalid: expected a whole number from 0 to 3600000',
      ],
      [{ AGENTMETER_TICK_INTERVAL_MS: " " }, 'AGENTMETER_TICK_INTERVAL_MS=" " is invalid'],
      [{ AGENTMETER_APPLY_FAILURE_LIMIT: " " }, 'AGENTMETER_APPLY_FAILURE_LIMIT=" " is invalid'],
      [{ AGENTMETER_MIN_CYCLE_INTERVAL_MS: "1.5" }, 'AGENTMETER_MIN_CYCLE_INTERVAL_MS="1.5" is invalid'],
      [
        { AGENTMETER_PARTITIONS: "+6" },
        'AGENTMETER_PARTITIONS="+6" is invalid: expected a whole number from 1 to 1024',
      ],
      [{ AGENTMETER_MAX_RECORD_BYTES: "64k" }, 'AGENTMETER_MAX_RECORD_BYTES="64k" is invalid'],
      [
        { AGENTMETER_COST_MULTIPLE: "1e2" },
        'AGENTMETER_COST_MULTIPLE="1e2" is invalid: expected a number above 0',
      ],
      [{ AGENTMETER_COST_MULTIPLE: " " }, 'AGENTMETER_COST_MULTIPLE=" " is invalid'],
    ];
    for (const [env, expected] of cases) {
      const message = refusal(loadServeConfig, env);
      assert.ok(message.startsWith(`config: ${expected}`), `${JSON.stringify(env)}: ${message}`);
      assert.equal(message.split("\n").length, 1, "one line");
    }
  });

  it("keep their defaults and bounds, and read plain decimal values as before", () => {
    const defaults = loadServeConfig({});
    assert.equal(defaults.serve.AGENTMETER_API_PORT, 8080);
    assert.equal(defaults.pipeline.AGENTMETER_TICK_INTERVAL_MS, 10_000);
    assert.equal(defaults.pipeline.AGENTMETER_COST_MULTIPLE, 2);
    const set = loadServeConfig({
      AGENTMETER_API_PORT: "9000",
      AGENTMETER_METRICS_PORT: "0",
      AGENTMETER_TICK_INTERVAL_MS: "0",
      AGENTMETER_APPLY_FAILURE_LIMIT: "0",
      AGENTMETER_COST_MULTIPLE: "1.5",
      AGENTMETER_FETCH_BYTES_PER_PARTITION: "65536",
    });
    assert.equal(set.serve.AGENTMETER_API_PORT, 9000);
    assert.equal(set.pipeline.AGENTMETER_METRICS_PORT, 0);
    assert.equal(set.pipeline.AGENTMETER_TICK_INTERVAL_MS, 0);
    assert.equal(set.pipeline.AGENTMETER_APPLY_FAILURE_LIMIT, 0);
    assert.equal(set.pipeline.AGENTMETER_COST_MULTIPLE, 1.5);
    assert.equal(set.pipeline.AGENTMETER_FETCH_BYTES_PER_PARTITION, 65_536);
    assert.match(
      refusal(loadConfig, { AGENTMETER_FETCH_BYTES_PER_PARTITION: "65535" }),
      /expected a whole number from 65536 to 67108864$/,
    );
    assert.match(refusal(loadConfig, { AGENTMETER_SESSION_TIMEOUT_MS: "5999" }), /from 6000 to 300000$/);
  });

  it("wholeNumber takes a leading minus only where the range has negatives", () => {
    const signed = wholeNumber(-5, 5);
    assert.equal(signed.parse("-3"), -3);
    assert.equal(signed.parse("5"), 5);
    for (const bad of ["+3", " 3", "-", "-6", "0x1", "1e0", ""])
      assert.equal(signed.safeParse(bad).success, false, JSON.stringify(bad));
    assert.equal(wholeNumber(0, 5).safeParse("-0").success, false);
  });
});

describe("addresses and names the servers would refuse", () => {
  it("a MongoDB URI without a host or with a port past 65535, a topic named . or .., a host with an empty label: one line at load, the password never shown", () => {
    const cases: [Env, string][] = [
      [
        { MONGODB_URI: "mongodb://h:99999/" },
        'MONGODB_URI="mongodb://h:99999/" is invalid: host "h:99999": the port must be a number from 1 to 65535',
      ],
      [
        { MONGODB_URI: "mongodb://" },
        'MONGODB_URI="mongodb://" is invalid: expected a host after mongodb://',
      ],
      [{ MONGODB_URI: "mongodb://u:p@/db" }, 'MONGODB_URI="mongodb://u:***@/db" is invalid: expected a host'],
      [{ MONGODB_URI: "mongodb://a:1,b:x/" }, 'MONGODB_URI="mongodb://a:1,b:x/" is invalid: host "b:x"'],
      [{ AGENTMETER_INPUT_TOPIC: "." }, 'AGENTMETER_INPUT_TOPIC="." is invalid'],
      [{ AGENTMETER_DLQ_TOPIC: ".." }, 'AGENTMETER_DLQ_TOPIC=".." is invalid'],
      [{ AGENTMETER_METRICS_HOST: "a..b" }, 'AGENTMETER_METRICS_HOST="a..b" is invalid'],
    ];
    for (const [env, expected] of cases) {
      const message = refusal(loadConfig, env);
      assert.ok(message.startsWith(`config: ${expected}`), `${JSON.stringify(env)}: ${message}`);
      assert.equal(message.split("\n").length, 1, "one line");
    }
    const secret = refusal(loadConfig, { MONGODB_URI: "mongodb://user:s3cretpw@h:99999/" });
    assert.doesNotMatch(secret, /s3cretpw/);
    assert.match(secret, /host "h:99999"/);
    // A password holding "/", "?", "#" or "@" not percent-encoded: refused, and no part of it is shown.
    for (const password of ["s3cr/etPW", "s3cr?etPW", "s3cr#etPW", "s3cr@etPW", "qq/zz@etPW"]) {
      const uri = `mongodb://meter:${password}@mongo:27017/?authSource=admin`;
      const message = refusal(loadConfig, { MONGODB_URI: uri });
      assert.match(message, /percent-encode/, message);
      for (const piece of password.split(/[/?#@]/))
        assert.ok(!message.includes(piece), `${piece} in ${message}`);
      assert.match(message, /meter:\*\*\*@/);
    }
    loadConfig({ MONGODB_URI: "mongodb://meter:s3cr%2Fet%40x@mongo:27017/?authSource=admin" });
    for (const env of [
      { MONGODB_URI: "mongodb+srv://cluster0.example.net/" },
      { MONGODB_URI: "mongodb://a:b@h1:1,h2:2/db?replicaSet=rs&authSource=admin" },
      { MONGODB_URI: "mongodb://[::1]:27017,h2/?tls=true" },
      { MONGODB_URI: "mongodb://%2Ftmp%2Fmongodb-27017.sock" },
      { AGENTMETER_INPUT_TOPIC: "a.b_c-1" },
      { AGENTMETER_METRICS_HOST: "metrics.example.com" },
      { AGENTMETER_METRICS_HOST: "::" },
    ])
      loadConfig(env);
  });
});
