import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { loadConfig, loadConfigWith } from "../../pipeline/config.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";

type Env = Record<string, string>;

/** The error a refused environment fails with: CONFIG_INVALID, one line, naming KAFKA_BROKERS. */
function refusal(load: () => unknown): string {
  try {
    load();
  } catch (error) {
    assert.ok(isAgentmeterError(error, "CONFIG_INVALID"), String(error));
    assert.deepEqual(error.details, { variable: "KAFKA_BROKERS" });
    assert.equal(error.message.split("\n").length, 1, `one line: ${error.message}`);
    return error.message;
  }
  assert.fail("expected CONFIG_INVALID");
}

const refused = (env: Env) => refusal(() => loadConfig(env));

const PREFIX = "expected host:port entries separated by commas";

describe("KAFKA_BROKERS", () => {
  it("refuses a port outside 1-65535 or not in decimal digits, naming the variable and the entry", () => {
    const cases: [string, string][] = [
      ["127.0.0.1:0", 'entry 1 "127.0.0.1:0": port "0"'],
      ["kafka:65536", 'entry 1 "kafka:65536": port "65536"'],
      ["kafka:99999", 'entry 1 "kafka:99999": port "99999"'],
      ["kafka:-1", 'entry 1 "kafka:-1": port "-1"'],
      ["kafka:", 'entry 1 "kafka:": port ""'],
      ["kafka:90x2", 'entry 1 "kafka:90x2": port "90x2"'],
      ["kafka:0x2384", 'entry 1 "kafka:0x2384": port "0x2384"'],
      ["kafka:9e3", 'entry 1 "kafka:9e3": port "9e3"'],
      ["kafka-0:9092,kafka-1:99999,kafka-2:9092", 'entry 2 "kafka-1:99999": port "99999"'],
    ];
    for (const [value, entry] of cases)
      assert.equal(
        refused({ KAFKA_BROKERS: value }),
        `config: KAFKA_BROKERS=${JSON.stringify(value)} is invalid: ${PREFIX}: ${entry} is invalid: expected a whole number from 1 to 65535`,
        value,
      );
  });

  it("refuses empty entries, whitespace inside an entry, a missing host or port and IPv6, naming the entry", () => {
    const cases: [string, string][] = [
      ["kafka:9092,", "entry 2: it is empty (a stray comma?)"],
      ["kafka-0:9092,,kafka-1:9092", "entry 2: it is empty (a stray comma?)"],
      [",kafka:9092", "entry 1: it is empty (a stray comma?)"],
      ["kafka:9092, ,kafka:9093", "entry 2: it is empty (a stray comma?)"],
      [" , ", "got none"],
      ["kafka 0:9092", 'entry 1 "kafka 0:9092": it holds whitespace'],
      ["kafka: 9092", 'entry 1 "kafka: 9092": it holds whitespace'],
      ["kafka-0:9092\tkafka-1:9092", 'entry 1 "kafka-0:9092\\tkafka-1:9092": it holds whitespace'],
      [":9092", 'entry 1 ":9092": the host is missing'],
      ["kafka-0:9092,:9093", 'entry 2 ":9093": the host is missing'],
      ["kafka", 'entry 1 "kafka": the port is missing'],
      ["kafka:9092:1", 'entry 1 "kafka:9092:1": it holds more than one'],
      ["[::1]:9092", 'entry 1 "[::1]:9092": IPv6 addresses are not supported by the Kafka client'],
      ["::1:9092", 'entry 1 "::1:9092": it holds more than one'],
      ["999.0.0.1:9092", 'entry 1 "999.0.0.1:9092": the host is not an IPv4 address'],
      ["10.0.1:9092", 'entry 1 "10.0.1:9092": the host is not an IPv4 address'],
      ["kafka..internal:9092", 'entry 1 "kafka..internal:9092": the host must be a host name'],
      ["-kafka:9092", 'entry 1 "-kafka:9092": the host must be a host name'],
      ["kafka_0:9092", 'entry 1 "kafka_0:9092": the host must be a host name'],
      ["kafka://broker:9092", 'entry 1 "kafka://broker:9092": it holds more than one'],
    ];
    for (const [value, problem] of cases) {
      const message = refused({ KAFKA_BROKERS: value });
      const start = `config: KAFKA_BROKERS=${JSON.stringify(value)} is invalid: ${PREFIX}`;
      assert.ok(message.startsWith(start), `${value}: ${message}`);
      assert.ok(message.includes(problem), `${value}: ${message}`);
    }
  });

  it("refuses a list override with an empty or bad entry as the variable it replaces", () => {
    assert.match(
      refusal(() => loadConfigWith({}, { KAFKA_BROKERS: ["kafka-0:9092", ""] })),
      /entry 2: it is empty/,
    );
    assert.match(
      refusal(() => loadConfigWith({}, { KAFKA_BROKERS: ["kafka-0:70000"] })),
      /entry 1 "kafka-0:70000": port "70000" is invalid/,
    );
  });

  it("keeps the forms that work: host names, IPv4, ports 1 and 65535, spaces around commas, the default", () => {
    const cases: [string, string[]][] = [
      ["kafka:9092", ["kafka:9092"]],
      ["localhost:9092", ["localhost:9092"]],
      ["127.0.0.1:19092", ["127.0.0.1:19092"]],
      ["0.0.0.0:1", ["0.0.0.0:1"]],
      ["255.255.255.255:65535", ["255.255.255.255:65535"]],
      [
        "kafka-0.kafka-headless:9092,kafka-1.kafka-headless:9092,kafka-2.kafka-headless:9092",
        ["kafka-0.kafka-headless:9092", "kafka-1.kafka-headless:9092", "kafka-2.kafka-headless:9092"],
      ],
      ["b-1.msk.eu-west-1.amazonaws.com.:9094", ["b-1.msk.eu-west-1.amazonaws.com.:9094"]],
      ["Kafka-A.Example.COM:9092", ["Kafka-A.Example.COM:9092"]],
      [" kafka-0:9092 , kafka-1:9093 ", ["kafka-0:9092", "kafka-1:9093"]],
      ["kafka:09092", ["kafka:09092"]],
    ];
    for (const [value, brokers] of cases)
      assert.deepEqual(loadConfig({ KAFKA_BROKERS: value }).KAFKA_BROKERS, brokers, value);
    assert.deepEqual(loadConfig({}).KAFKA_BROKERS, ["127.0.0.1:19092"]);
    assert.deepEqual(loadConfig({ KAFKA_BROKERS: "" }).KAFKA_BROKERS, ["127.0.0.1:19092"], "empty is unset");
    const whole = loadConfig({ KAFKA_BROKERS: "a:1,b.c:2" });
    assert.deepEqual(loadConfigWith({}, { KAFKA_BROKERS: whole.KAFKA_BROKERS }).KAFKA_BROKERS, [
      "a:1",
      "b.c:2",
    ]);
  });
});
