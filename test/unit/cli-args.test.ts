import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { main } from "../../pipeline/cli/main.ts";

// Every case is refused before any connection; should one slip through, it finds no server here.
Object.assign(process.env, {
  KAFKA_BROKERS: "127.0.0.1:1",
  MONGODB_URI: "mongodb://127.0.0.1:1/",
  CLICKHOUSE_URL: "http://127.0.0.1:1",
});

/** Runs the CLI in-process. */
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

describe("bad command-line arguments", () => {
  test("serve with a flag: one line naming it and where configuration goes, exit 2", async () => {
    const { code, stdout, stderr } = await agentmeter(["serve", "--port", "9000"]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      "agentmeter serve: unknown argument '--port' (configuration is by environment: see README, e.g. AGENTMETER_API_PORT)\n",
    );
  });

  test("demo with a count that is not a whole number from 1 to 1000000: one line naming the flag, exit 2", async () => {
    const cases: [string[], string][] = [
      [["--records", "-1"], '--records "-1"'],
      [["--records=-1"], '--records "-1"'],
      [["--apps", "0x10"], '--apps "0x10"'],
      [["--users-per-app", "0"], '--users-per-app "0"'],
      [["--users-per-app", "1e3"], '--users-per-app "1e3"'],
      [["--records", " 5"], '--records " 5"'],
    ];
    for (const [args, named] of cases) {
      const { code, stdout, stderr } = await agentmeter(["demo", ...args]);
      assert.equal(code, 2, args.join(" "));
      assert.equal(stdout, "");
      assert.equal(
        stderr,
        `agentmeter demo: ${named} is invalid: expected a whole number from 1 to 1000000\n`,
        args.join(" "),
      );
    }
  });

  test("a value starting with '-' for any command's option: one line naming the option, exit 2", async () => {
    for (const [args, option] of [
      [["compute", "--format", "-x"], "--format"],
      [["simulate", "--records", "-1"], "--records"],
      [["keys", "create", "--name", "-x"], "--name"],
      [["audit", "--from-offset", "-1"], "--from-offset"],
      [["demo", "--bogus"], "--bogus"],
    ] as const) {
      const { code, stderr } = await agentmeter([...args]);
      assert.equal(code, 2, args.join(" "));
      assert.equal(stderr.split("\n").length, 2, `one line: ${stderr}`);
      assert.ok(stderr.includes(option), stderr);
    }
  });
});
