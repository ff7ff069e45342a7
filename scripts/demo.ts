/**
 * `npm run demo`: the demo command on the local stack. Brings the stack up unless KAFKA_BROKERS,
 * MONGODB_URI and CLICKHOUSE_URL are already set, then runs the demo against it. The stack start lives
 * here rather than in the command, so the command (and the Docker image that carries it) does not
 * depend on deploy/local.
 */

import { stackUp } from "../deploy/local/stack.ts";
import { loadStackConfig } from "../deploy/local/stack-config.ts";
import { DEMO_ENDPOINTS, parseDemoArgs, runDemo } from "../pipeline/cli/demo.ts";
import { processIo, withExitCodes } from "../pipeline/cli/io.ts";
import { loadConfig } from "../pipeline/config.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";

async function main(argv: readonly string[]): Promise<number> {
  const counts = parseDemoArgs(argv, processIo);
  if (typeof counts === "number") return counts;
  return withExitCodes("demo", processIo, async () => {
    const given = DEMO_ENDPOINTS.every((name) => process.env[name]);
    if (!given) {
      // A bad variable is refused in one line before minutes of starting servers, not after them.
      loadBillingConfig(loadConfig(process.env));
      const { cacheDir } = loadStackConfig();
      process.stderr.write(
        `demo: starting the local stack (first run installs Kafka, ClickHouse and FerretDB into ${cacheDir})\n`,
      );
      const up = await stackUp();
      process.env.KAFKA_BROKERS = up.kafkaBrokers.join(",");
      process.env.MONGODB_URI = up.mongoUri;
      process.env.CLICKHOUSE_URL = up.clickhouseUrl;
    }
    const code = await runDemo(counts, processIo);
    process.stdout.write(
      "\nThe local stack is still running (npm run stack:status; npm run stack:down to stop it).\n",
    );
    return code;
  });
}

process.exitCode = await main(process.argv.slice(2));
