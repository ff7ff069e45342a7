import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../", import.meta.url));
const fixture = "test/fixtures/billing/worked-example.jsonl";

function agentmeter(args: string[], input?: string) {
  const result = spawnSync(process.execPath, ["bin/agentmeter.mjs", ...args], {
    cwd: root,
    input,
    encoding: "utf8",
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

type Report = {
  accounts: Record<string, unknown>[];
  creators: Record<string, unknown>[];
  counts: { records: number; malformed_lines: number };
  outputs: { kind: string; record_id: string }[];
};

describe("agentmeter compute", () => {
  test("Given the worked example, When computed as JSON, Then balances, billed, earnings and fees are the documented ones", () => {
    const { code, stdout, stderr } = agentmeter(["compute", fixture]);
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
      { mozaiks_user_id: "user_123", earnings_micros: "13442", platform_billed_micros: "27500" },
    ]);
    assert.equal(report.outputs.filter((o) => o.kind === "duplicate_ignored").length, 1);
  });
  test("Given records on stdin, When FILE is -, Then the same result", () => {
    const fromFile = agentmeter(["compute", fixture]);
    const fromStdin = agentmeter(["compute", "-"], readFileSync(`${root}${fixture}`, "utf8"));
    assert.equal(fromStdin.stdout, fromFile.stdout);
  });
  test("Given docs/billing.md, Then its compute table is exactly what compute prints for the fixture", () => {
    const docs = readFileSync(`${root}docs/billing.md`, "utf8");
    const block = /<!-- compute-table: (\S+) -->\n```text\n([\s\S]*?)```/.exec(docs);
    assert.ok(block, "docs/billing.md has no compute-table block");
    const { stdout } = agentmeter(["compute", block[1]!, "--format", "table"]);
    assert.equal(block[2]!.trimEnd(), stdout.trimEnd());
  });
  test("Given malformed lines, Then each is reported with its line number and reason, the rest computed, exit 1", () => {
    const { code, stdout, stderr } = agentmeter(["compute", "test/fixtures/billing/malformed.jsonl"]);
    assert.equal(code, 1);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^line 2: RECORD_NOT_JSON: /);
    assert.match(lines[1]!, /^line 3: RECORD_INVALID: .*"cost"/);
    assert.match(lines[2]!, /^line 5: RECORD_INVALID: enterprise_id: /);
    const report = JSON.parse(stdout) as Report;
    assert.deepEqual([report.counts.records, report.counts.malformed_lines], [2, 3]);
  });
  test("Given a bad argument, Then one line saying what, exit 2", () => {
    for (const args of [
      ["compute", "--colour"],
      ["compute", "--format", "xml"],
      ["compute", "missing.jsonl"],
      ["nope"],
    ]) {
      const { code, stderr } = agentmeter(args);
      assert.equal(code, 2, args.join(" "));
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
    }
  });
  test("Given an invalid config file, Then exit 2 naming the field", () => {
    const { code, stderr } = agentmeter(["compute", fixture, "--config", "package.json"]);
    assert.equal(code, 2);
    assert.match(stderr, /--config package\.json: billing config: Unrecognized key/);
  });
  test("Given --help, Then usage on stdout, exit 0", () => {
    assert.match(agentmeter(["--help"]).stdout, /compute/);
    assert.match(agentmeter(["compute", "--help"]).stdout, /--price-book FILE/);
  });
});
