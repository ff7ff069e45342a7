import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { withExitCodes } from "../../pipeline/cli/io.ts";
import { main } from "../../pipeline/cli/main.ts";
import { AgentmeterError } from "../../pipeline/errors.ts";

// No server listens on port 1: every connection is refused, as after `npm run stack:down`. Every case
// but the last suite's is refused before any connection.
Object.assign(process.env, {
  KAFKA_BROKERS: "127.0.0.1:1",
  MONGODB_URI: "mongodb://127.0.0.1:1/",
  CLICKHOUSE_URL: "http://127.0.0.1:1",
  LOG_LEVEL: "silent",
});

/** withExitCodes around `action`, with captured standard error. */
async function withCapturedExit(name: string, action: () => Promise<number>) {
  let stderr = "";
  const code = await withExitCodes(
    name,
    {
      stdin: Readable.from([""]),
      stdout: { write: () => true },
      stderr: { write: (t: string) => (stderr += t) },
    },
    action,
  );
  return { code, stderr };
}

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

  test("audit --from-time that is not epoch ms or an ISO time with a zone: one line, exit 2, before any connection", async () => {
    for (const time of [
      "March 7",
      "2025-07",
      "2025-07-28 10:15",
      "2025-07-28T10:15:00",
      "2025-02-30T00:00:00Z",
    ]) {
      const { code, stdout, stderr } = await agentmeter(["audit", `--from-time=${time}`]);
      assert.equal(code, 2, time);
      assert.equal(stdout, "");
      assert.equal(
        stderr,
        `agentmeter audit: --from-time '${time}' is not epoch milliseconds or an ISO 8601 time with a zone (e.g. 2026-11-01T00:00:00Z)\n`,
      );
    }
  });

  test("audit --from-time before 1970 (Kafka reads a negative time as latest or earliest): one line, exit 2", async () => {
    for (const time of ["1969-12-31T23:59:59.999Z", "1970-01-01T00:59:59+01:00", "1900-01-01T00:00:00Z"]) {
      const { code, stdout, stderr } = await agentmeter(["audit", `--from-time=${time}`]);
      assert.equal(code, 2, time);
      assert.equal(stdout, "");
      assert.equal(
        stderr,
        `agentmeter audit: --from-time '${time}' is before 1970-01-01T00:00:00Z: no record is older (every record's time is from 1970 on)\n`,
      );
    }
  });

  test("simulate with a count that is not plain digits (hex, exponent, empty, blank): one line naming it, exit 2", async () => {
    const cases: [string, string][] = [
      ["--records", "0x10"],
      ["--records", "1e3"],
      ["--seed", ""],
      ["--malformed", " "],
      ["--apps", "1.5"],
    ];
    for (const [option, value] of cases) {
      const { code, stdout, stderr } = await agentmeter(["simulate", "--dry-run", `${option}=${value}`]);
      assert.equal(code, 2, `${option}=${value}`);
      assert.equal(stdout, "");
      assert.match(
        stderr,
        new RegExp(
          `^agentmeter simulate: ${option} must be an integer from [01] to 10000000, got "${value.replace(".", "\\.")}"\n$`,
        ),
      );
    }
    const ok = await agentmeter(["simulate", "--dry-run", "--records=16", "--seed=0"]);
    assert.equal(ok.code, 0, ok.stderr);
  });

  test("audit --report in a directory that does not exist: one line, exit 2, before the audit reads anything", async () => {
    const { code, stdout, stderr } = await agentmeter([
      "audit",
      "--report",
      "/nonexistent-agentmeter-dir/x.json",
    ]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.equal(
      stderr,
      "agentmeter audit: --report /nonexistent-agentmeter-dir/x.json: cannot write in /nonexistent-agentmeter-dir (ENOENT)\n",
    );
  });

  test("demo with a bad configuration value: one line naming the variable, exit 2, no stack trace", async () => {
    const saved = process.env.AGENTMETER_PARTITIONS;
    process.env.AGENTMETER_PARTITIONS = "0";
    try {
      const { code, stdout, stderr } = await agentmeter(["demo", "--records", "10"]);
      assert.equal(code, 2);
      assert.equal(stdout, "");
      assert.equal(
        stderr,
        'agentmeter demo: config: AGENTMETER_PARTITIONS="0" is invalid: expected a whole number from 1 to 1024\n',
      );
    } finally {
      if (saved === undefined) delete process.env.AGENTMETER_PARTITIONS;
      else process.env.AGENTMETER_PARTITIONS = saved;
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

describe("an option a command does not take", () => {
  test("one line naming it (a name only) and where the options are listed, exit 2", async () => {
    for (const command of ["compute", "simulate", "audit", "redrive", "replay"]) {
      const { code, stdout, stderr } = await agentmeter([command, "--formt", "table"]);
      assert.equal(code, 2, command);
      assert.equal(stdout, "");
      assert.equal(stderr, `agentmeter ${command}: unknown option '--formt' (--help lists the options)\n`);
    }
    const pasted = "--sk_live_4eC39HqLyjWDarjtT1zdp7dc";
    const { stderr } = await agentmeter(["compute", pasted]);
    assert.equal(
      stderr,
      "agentmeter compute: unknown option (not shown: it is not a name) (--help lists the options)\n",
    );
  });
});

describe("values that may be secrets are never echoed", () => {
  // What a user may paste by mistake: an API key, a password, a connection string.
  const secrets = [
    `amk_${randomBytes(32).toString("base64url")}`,
    "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
    "mongodb://admin:hunter2pass@db.internal:27017/",
    "p@ss w0rd!",
    "x".repeat(65),
  ];

  /** Refused with exit 2, nothing on stdout, one line on stderr that names `option` and not `secret`. */
  function refusedQuietly(
    run: { code: number; stdout: string; stderr: string },
    secret: string,
    option?: string,
  ) {
    assert.equal(run.code, 2, run.stderr);
    assert.equal(run.stdout, "");
    assert.equal(run.stderr.split("\n").length, 2, `one line: ${run.stderr}`);
    assert.ok(!run.stderr.includes(secret), `echoed: ${run.stderr}`);
    for (const part of secret.split(/[^A-Za-z0-9]+/).filter((piece) => piece.length >= 8))
      assert.ok(!run.stderr.includes(part), `echoed in part: ${run.stderr}`);
    if (option !== undefined) assert.ok(run.stderr.includes(option), run.stderr);
  }

  test("keys create --name with a key, password or bad name: names --name and the rule, never the value", async () => {
    // sk_live_... is a valid name (a key of another system cannot be told from one): it is not refused.
    for (const secret of secrets.filter((text) => !text.startsWith("sk_live_"))) {
      for (const args of [
        ["--scope", "read", "--name", secret],
        [`--name=${secret}`, "--scope", "admin"],
      ]) {
        const run = await agentmeter(["keys", "create", ...args]);
        refusedQuietly(run, secret, "--name");
        assert.ok(run.stderr.startsWith("agentmeter keys create: --name is invalid"), run.stderr);
      }
    }
    const pasted = await agentmeter(["keys", "create", "--scope", "read", "--name", secrets[0]!]);
    assert.match(pasted.stderr, /starts with amk_, as an API key does/);
  });

  test("keys create --name or --scope with a value starting with '-': names the option, never the value", async () => {
    const secret = `-${randomBytes(24).toString("base64url")}`;
    refusedQuietly(
      await agentmeter(["keys", "create", "--scope", "read", "--name", secret]),
      secret,
      "--name",
    );
    refusedQuietly(await agentmeter(["keys", "create", "--scope", secret]), secret, "--scope");
  });

  test("keys create --scope with a key or password: names --scope, never the value", async () => {
    for (const secret of secrets)
      refusedQuietly(await agentmeter(["keys", "create", "--scope", secret]), secret, "--scope");
  });

  test("a key given without its option, or as the action or command: refused without printing it", async () => {
    for (const secret of secrets) {
      refusedQuietly(await agentmeter(["keys", "create", "--scope", "read", secret]), secret);
      refusedQuietly(await agentmeter(["keys", "create", secret, "--scope", "read"]), secret);
      const action = await agentmeter(["keys", secret]);
      assert.equal(action.code, 2);
      assert.ok(!action.stderr.includes(secret), action.stderr);
      assert.ok(action.stderr.startsWith("agentmeter keys: unknown action (not shown"), action.stderr);
      refusedQuietly(await agentmeter([secret]), secret);
    }
    assert.match((await agentmeter(["keys", "make"])).stderr, /unknown action 'make'/);
    assert.match((await agentmeter(["bogus"])).stderr, /unknown command 'bogus'/);
  });

  test("a stray argument to audit, redrive, replay, simulate or demo is refused without printing it", async () => {
    const secret = "mongodb://admin:hunter2pass@db.internal:27017/";
    for (const command of ["audit", "redrive", "replay", "simulate", "demo"])
      refusedQuietly(await agentmeter([command, secret]), "hunter2pass");
  });
});

describe("npm run demo with a bad variable", () => {
  test("is refused in one line before the local stack starts: exit 2, naming the variable and the cache it would use", () => {
    const env: NodeJS.ProcessEnv = { ...process.env, AGENTMETER_PARTITIONS: "abc" };
    for (const name of ["KAFKA_BROKERS", "MONGODB_URI", "CLICKHOUSE_URL"]) delete env[name];
    const started = Date.now();
    const run = spawnSync(process.execPath, ["--import", "tsx", "scripts/demo.ts"], {
      env,
      encoding: "utf8",
    });
    assert.equal(run.status, 2, run.stderr);
    assert.equal(
      run.stderr,
      'agentmeter demo: config: AGENTMETER_PARTITIONS="abc" is invalid: expected a whole number from 1 to 1024\n',
    );
    assert.ok(Date.now() - started < 30_000, "no server was started");
  });
});

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

describe("a connection string the configuration takes but a driver refuses", () => {
  test("is one line naming its variable, exit 2, its secret not shown", async () => {
    const { MongoClient } = await import("mongodb");
    const { createClient } = await import("@clickhouse/client");
    const cases: [() => unknown, RegExp][] = [
      [
        () => new MongoClient("mongodb://:secretonly@127.0.0.1:1/"),
        /^agentmeter x: config: MONGODB_URI is not accepted by the MongoDB driver: /,
      ],
      [
        () => createClient({ url: "http://127.0.0.1:1/?password=secretonly" }),
        /^agentmeter x: config: CLICKHOUSE_URL is not accepted by the ClickHouse client: /,
      ],
    ];
    for (const [make, line] of cases) {
      const { code, stderr } = await withCapturedExit("x", async () => {
        make();
        return 0;
      });
      assert.equal(code, 2, stderr);
      assert.match(stderr, line);
      assert.equal(stderr.split("\n").length, 2, stderr);
      assert.ok(!stderr.includes("secretonly"), stderr);
    }
  });
});

describe("a send that fails past its retries mid-run", () => {
  test("is one line, exit 3, as a server that does not answer", async () => {
    const { code, stderr } = await withCapturedExit("simulate", async () => {
      throw new AgentmeterError("PRODUCE_FAILED", "record r-1 was not written to Kafka: Connection error");
    });
    assert.equal(code, 3);
    assert.equal(stderr, "agentmeter simulate: record r-1 was not written to Kafka: Connection error\n");
  });
});
