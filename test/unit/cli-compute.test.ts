import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { EXIT_REJECTED } from "../../pipeline/cli/io.ts";
import { main } from "../../pipeline/cli/main.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixture = "test/fixtures/billing/worked-example.jsonl";

/** Runs the CLI in-process (fast); paths are relative to the repository root. */
async function agentmeter(args: string[], input = "") {
  let stdout = "";
  let stderr = "";
  const resolved = args.map((arg) => (/^(test|docs|package)/.test(arg) ? `${root}${arg}` : arg));
  const code = await main(resolved, {
    stdin: Readable.from([input]),
    stdout: { write: (text: string) => (stdout += text) },
    stderr: { write: (text: string) => (stderr += text) },
  });
  return { code, stdout, stderr };
}

type Report = {
  accounts: Record<string, unknown>[];
  creators: Record<string, unknown>[];
  counts: { records: number; malformed_lines: number };
  outputs: { kind: string; record_id: string }[];
};

describe("agentmeter compute", () => {
  test("Given the worked example, When computed as JSON, Then balances, billed, earnings and fees are the documented ones", async () => {
    const { code, stdout, stderr } = await agentmeter(["compute", fixture]);
    assert.equal(code, 0, stderr);
    const report = JSON.parse(stdout) as Report;
    const app = report.accounts.find((a) => a.account_key === "app:app_456:enduser_789")!;
    assert.deepEqual(
      [app.trial_remaining_tokens, app.paid_tokens, app.cost_micros, app.billed_micros],
      [0, 2500, "40803", "19203"],
    );
    assert.deepEqual([app.creator_share_micros, app.platform_fee_micros], ["13442", "5761"]);
    const platform = report.accounts.find((a) => a.account_key === "platform:user_123")!;
    assert.deepEqual(
      [platform.paid_tokens, platform.cost_micros, platform.billed_micros, platform.platform_fee_micros],
      [45000, "505000", "27500", "27500"],
    );
    assert.deepEqual(report.creators, [
      {
        mozaiks_user_id: "user_123",
        earnings_micros: "13442",
        platform_billed_micros: "27500",
        net_earnings_micros: "13442",
        net_platform_billed_micros: "27500",
      },
    ]);
    assert.equal(report.outputs.filter((o) => o.kind === "duplicate_ignored").length, 1);
  });
  test("Given voids and refunds, When computed as JSON, Then each creator's earnings are given gross and net of them", async () => {
    const { code, stdout, stderr } = await agentmeter([
      "compute",
      "test/unit/fixtures/corrections-example.jsonl",
    ]);
    // The example's last refund and void are refused on purpose (what is left, the window).
    assert.equal(code, EXIT_REJECTED, stderr);
    const report = JSON.parse(stdout) as Report;
    // docs/billing.md, Corrections: creator 6,681 gross, 3,181 reversed by k-refund-1 and k-void-1.
    assert.deepEqual(report.creators, [
      {
        mozaiks_user_id: "user_123",
        earnings_micros: "6681",
        platform_billed_micros: "0",
        net_earnings_micros: "3500",
        net_platform_billed_micros: "0",
      },
    ]);
  });
  test("Given lines of JSON whitespace, Then they are skipped; a line of a no-break space, U+2028 or a byte-order mark is malformed (RECORD_NOT_JSON), as the processor has it", async () => {
    const { code, stdout, stderr } = await agentmeter(["compute", "-"], " \t\r\n\n\u00a0\n\u2028\n\ufeff\n");
    assert.equal(code, 1);
    const report = JSON.parse(stdout) as Report & { counts: { lines: number } };
    assert.deepEqual([report.counts.records, report.counts.malformed_lines], [0, 3]);
    assert.equal(stderr.match(/RECORD_NOT_JSON/g)?.length, 3, stderr);
  });
  test("Given grant tokens left, Then the account's JSON shows them and what is available, not only the allowance and paid balance", async () => {
    const records = [
      `{"type": "credit", "record_id": "b0", "kind": "budget_set", "level": "app_usage", "enterprise_id": "app1", "mozaiks_user_id": "u1", "platform_user_id": "e1", "tokens": 0, "occurred_at": "2025-07-01T00:00:00Z"}`,
      `{"type": "credit", "record_id": "g1", "kind": "grant", "level": "app_usage", "enterprise_id": "app1", "mozaiks_user_id": "u1", "platform_user_id": "e1", "tokens": 500, "occurred_at": "2025-07-01T00:00:00Z"}`,
      `{"type": "usage", "record_id": "u1", "level": "app_usage", "enterprise_id": "app1", "mozaiks_user_id": "u1", "platform_user_id": "e1", "workflow_type": "wt", "workflow_name": "wf", "session_id": "s1", "chat_id": "c1", "agent_usage": {"A": {"prompt_tokens": 50, "completion_tokens": 50}}, "occurred_at": "2025-07-01T01:00:00Z"}`,
    ].join("\n");
    const { code, stdout, stderr } = await agentmeter(["compute", "-"], records);
    assert.equal(code, 0, stderr);
    const [account] = (JSON.parse(stdout) as Report).accounts;
    // Budget 0, a grant of 500, 100 tokens used from it: 400 left in the grant, nothing else.
    assert.deepEqual(
      [
        account?.trial_remaining_tokens,
        account?.paid_tokens,
        account?.grant_tokens,
        account?.available_tokens,
      ],
      [0, 0, 400, 400],
    );
  });
  test("Given records on stdin, When FILE is -, Then the same result", async () => {
    const fromFile = await agentmeter(["compute", fixture]);
    const fromStdin = await agentmeter(["compute", "-"], readFileSync(`${root}${fixture}`, "utf8"));
    assert.equal(fromStdin.stdout, fromFile.stdout);
  });
  test("Given docs/billing.md, Then its compute table is exactly what compute prints for the fixture", async () => {
    const docs = readFileSync(`${root}docs/billing.md`, "utf8");
    const block = /<!-- compute-table: (\S+) -->\n```text\n([\s\S]*?)```/.exec(docs);
    assert.ok(block, "docs/billing.md has no compute-table block");
    const { stdout } = await agentmeter(["compute", block[1]!, "--format", "table"]);
    assert.equal(block[2]!.trimEnd(), stdout.trimEnd());
  });
  test("Given malformed lines, Then each is reported with its line number and reason, the rest computed, exit 1", async () => {
    const { code, stdout, stderr } = await agentmeter(["compute", "test/fixtures/billing/malformed.jsonl"]);
    assert.equal(code, 1);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^line 2: RECORD_NOT_JSON: /);
    assert.match(lines[1]!, /^line 3: RECORD_INVALID: .*"cost"/);
    assert.match(lines[2]!, /^line 5: RECORD_INVALID: enterprise_id: /);
    const report = JSON.parse(stdout) as Report;
    assert.deepEqual([report.counts.records, report.counts.malformed_lines], [2, 3]);
  });
  test("Given a bad argument, Then one line saying what, exit 2", async () => {
    for (const args of [
      ["compute", "--colour"],
      ["compute", "--format", "xml"],
      ["compute", "missing.jsonl"],
      ["compute", "test/fixtures/billing"],
      ["compute", fixture, "--config", "test/fixtures"],
      ["nope"],
    ]) {
      const { code, stderr } = await agentmeter(args);
      assert.equal(code, 2, args.join(" "));
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
    }
  });
  test("Given a directory as FILE, Then one line saying so, exit 2, nothing on stdout", async () => {
    const { code, stdout, stderr } = await agentmeter(["compute", "test/fixtures/billing"]);
    assert.equal(code, 2);
    assert.equal(stdout, "");
    assert.match(stderr, /^agentmeter compute: FILE \S*test\/fixtures\/billing: is a directory/);
    assert.equal(stderr.trim().split("\n").length, 1, stderr);
  });
  test("Given records the billing rules reject, Then each is listed on stderr with line, record_id, code and reason, exit 3", async () => {
    const lines = readFileSync(`${root}${fixture}`, "utf8").trim().split("\n");
    const usage = JSON.parse(lines.find((l) => l.includes('"type": "usage"'))!) as Record<string, unknown>;
    const unknown = { ...usage, record_id: "u-unknown-model", model: "no-such-model" };
    const late = { ...usage, record_id: "u-too-late", occurred_at: "2024-01-01T00:00:00Z" };
    const input = [...lines, JSON.stringify(unknown), "", JSON.stringify(late)].join("\n");
    const { code, stdout, stderr } = await agentmeter(["compute", "-", "--format", "table"], input);
    assert.equal(code, 3, stderr);
    const problems = stderr.trim().split("\n");
    assert.equal(problems.length, 2, stderr);
    assert.match(
      problems[0]!,
      new RegExp(`^line ${lines.length + 1}: record_id u-unknown-model: UNKNOWN_MODEL: `),
    );
    assert.match(
      problems[1]!,
      new RegExp(`^line ${lines.length + 3}: record_id u-too-late: RECORD_TOO_LATE: `),
    );
    assert.match(stdout, /rejected=2/);
    // Alone: a file of one rejected record is not "ok" either.
    const alone = await agentmeter(["compute", "-"], JSON.stringify(unknown));
    assert.equal(alone.code, 3);
    assert.equal(
      (JSON.parse(alone.stdout) as { counts: { rejected_records: number } }).counts.rejected_records,
      1,
    );
  });
  test("Given malformed lines and rejected records together, Then stderr is in line order and exit 1", async () => {
    const lines = readFileSync(`${root}${fixture}`, "utf8").trim().split("\n");
    const usage = JSON.parse(lines.find((l) => l.includes('"type": "usage"'))!) as Record<string, unknown>;
    const unknown = JSON.stringify({ ...usage, record_id: "u-x", model: "no-such-model" });
    const { code, stderr } = await agentmeter(
      ["compute", "-"],
      [unknown, "{not json", unknown.replace("u-x", "u-y")].join("\n"),
    );
    assert.equal(code, 1);
    assert.deepEqual(
      stderr
        .trim()
        .split("\n")
        .map((l) => l.split(":").slice(0, 2).join(":")),
      ["line 1: record_id u-x", "line 2: RECORD_NOT_JSON", "line 3: record_id u-y"],
    );
  });
  test("Given --format json, Then the streamed report parses and lists every output with its line", async () => {
    const { stdout } = await agentmeter(["compute", fixture]);
    const report = JSON.parse(stdout) as { outputs: { seq: { line: number } }[] };
    assert.ok(report.outputs.length > 0);
    assert.ok(report.outputs.every((o) => typeof o.seq.line === "number"));
    const empty = JSON.parse((await agentmeter(["compute", "-"], "")).stdout) as Report;
    assert.deepEqual(empty.outputs, []);
  });
  test("Given an invalid config file, Then exit 2 naming the field", async () => {
    const { code, stderr } = await agentmeter(["compute", fixture, "--config", "package.json"]);
    assert.equal(code, 2);
    assert.match(stderr, /--config \S*package\.json: billing config: Unrecognized key/);
  });
  test("Given --help, Then usage on stdout, exit 0", async () => {
    assert.match((await agentmeter(["--help"])).stdout, /compute/);
    const help = (await agentmeter(["compute", "--help"])).stdout;
    assert.match(help, /--price-book FILE/);
    for (const code of ["0", "1", "2", "3"]) assert.match(help, new RegExp(`^  ${code}  `, "m"));
  });
  test("Given the installed launcher bin/agentmeter.mjs, When run as a process on a file with a bad line, Then stdout, stderr and exit code come through", async () => {
    const result = spawnSync(
      process.execPath,
      ["bin/agentmeter.mjs", "compute", "test/fixtures/billing/malformed.jsonl", "--format", "table"],
      {
        cwd: root,
        encoding: "utf8",
      },
    );
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stdout, /^Accounts/);
    assert.match(result.stderr, /^line 2: RECORD_NOT_JSON/);
  });
});
