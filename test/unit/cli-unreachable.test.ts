import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { main } from "../../pipeline/cli/main.ts";

// No server listens on port 1: every connection is refused, as after `npm run stack:down`.
Object.assign(process.env, {
  KAFKA_BROKERS: "127.0.0.1:1",
  MONGODB_URI: "mongodb://127.0.0.1:1/",
  CLICKHOUSE_URL: "http://127.0.0.1:1",
  LOG_LEVEL: "silent",
});

async function agentmeter(args: string[]) {
  let stdout = "";
  let stderr = "";
  const code = await main(args, {
    stdin: Readable.from([""]),
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

/**
 * A command that needs Kafka and does not find it says so in one line naming the brokers, and exits 3,
 * as audit and redrive do: no stack trace (kafkajs gives up after its retries, about 30 s).
 */
describe("commands whose Kafka does not answer", { concurrency: true, timeout: 120_000 }, () => {
  for (const [command, args] of [
    ["simulate", ["simulate", "--records", "1"]],
    ["serve", ["serve"]],
  ] as const) {
    test(`${command}: one line naming Kafka and its address, exit 3`, async () => {
      const { code, stdout, stderr } = await agentmeter([...args]);
      assert.equal(code, 3, stderr);
      assert.equal(stdout, "");
      assert.match(
        stderr,
        new RegExp(`^agentmeter ${command}: Kafka at 127\\.0\\.0\\.1:1 does not answer: .+\\n$`),
      );
      assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
    });
  }
});
