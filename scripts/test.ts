/**
 * The one test command (`npm test`, also what .ci/run calls): unit tests first, then the integration tests
 * against real servers. Servers come from test/support/services.ts, resolved once here so that the test
 * files (each run in its own process) share one stack instead of racing to start it.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { getServices } from "../test/support/services.ts";

function testFiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(".test.ts"))
    .sort()
    .map((name) => join(dir, name));
}

/**
 * CI gives the whole run a fixed time; a run that hits it reports nothing. .ci/run hands down what is left
 * (AGENTMETER_TEST_BUDGET_S) so that a hung test file stops the tests with a line saying so, and the spec
 * output of everything before it, instead of a silent timeout.
 */
const budgetSeconds = Number(process.env.AGENTMETER_TEST_BUDGET_S ?? 0);
const deadline = budgetSeconds > 0 ? Date.now() + budgetSeconds * 1000 : undefined;

function runNodeTests(
  files: string[],
  env: NodeJS.ProcessEnv,
  concurrency: number,
  extra: readonly string[] = [],
): number {
  if (files.length === 0) return 0;
  const args = [
    "--import",
    "tsx",
    "--test",
    `--test-concurrency=${concurrency}`,
    ...extra,
    "--test-reporter=spec",
    ...files,
  ];
  const timeout = deadline === undefined ? undefined : Math.max(1, deadline - Date.now());
  const result = spawnSync(process.execPath, args, { stdio: "inherit", env, timeout, killSignal: "SIGTERM" });
  if (result.error !== undefined && "code" in result.error && result.error.code === "ETIMEDOUT") {
    console.error(`tests stopped: the time budget of ${budgetSeconds} s (AGENTMETER_TEST_BUDGET_S) ran out`);
    return 1;
  }
  return result.status ?? 1;
}

const only = process.argv[2];
const unitStatus = only === "int" ? 0 : runNodeTests(testFiles("test/unit"), process.env, 2);
if (unitStatus !== 0 || only === "unit") process.exit(unitStatus);

const services = await getServices();
console.log(
  `integration services (${services.source}): kafka=${services.kafkaBrokers.join(",")} mongo=${services.mongoUri} clickhouse=${services.clickhouseUrl}`,
);
// Local stack: each test file finds it again through getServices() (stackUp() on a running stack is a
// no-op, which the stack test checks). Env or testcontainers: hand the endpoints down as env.
const env =
  services.source === "local"
    ? { ...process.env, AGENTMETER_TEST_SERVICES: "local" }
    : {
        ...process.env,
        KAFKA_BROKERS: services.kafkaBrokers.join(","),
        MONGODB_URI: services.mongoUri,
        CLICKHOUSE_URL: services.clickhouseUrl,
      };
// One integration file at a time: two cores are shared with the brokers, and timing-sensitive tests
// (crash, rebalance) should not compete with each other.
// --test-force-exit: a file whose tests are done exits. Without it, outages.int.test.ts (the broker
// restart) was still alive 50-100 s after its last test in 11 of 13 runs watched (about ten minutes when
// left alone), holding up the next file. kafkajs' runner heartbeats after each eachBatch returns
// (consumer/runner.js, handleBatch); when that comes after consumer.disconnect() closed the coordinator's
// connection, the heartbeat opens a new one (seen with a stack on the leaked socket, 2026-12-05), which
// nothing closes until the broker drops it as idle (connections.max.idle.ms, 10 minutes). The
// processor's binary exits after stop().
process.exit(runNodeTests(testFiles("test/int"), env, 1, ["--test-force-exit"]));
