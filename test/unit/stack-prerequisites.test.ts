import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import {
  checkTools,
  describeMissing,
  goVersion,
  javaMajor,
  type Tool,
} from "../../deploy/local/prerequisites.ts";

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..");
const scratch = mkdtempSync(path.join(tmpdir(), "agentmeter-prereq-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A directory of stub programs standing in for the real ones, to be used as the whole PATH. */
function fakeBin(name: string, stubs: Record<string, string>): string {
  const dir = path.join(scratch, name);
  mkdirSync(dir, { recursive: true });
  for (const [program, script] of Object.entries(stubs)) {
    const file = path.join(dir, program);
    writeFileSync(file, `#!/bin/sh\n${script}\n`);
    chmodSync(file, 0o755);
  }
  return dir;
}

const GOOD: Record<string, string> = {
  java: `echo 'openjdk version "17.0.15" 2025-04-15' >&2`,
  go: "echo 'go version go1.24.3 linux/amd64'",
  mvn: "exit 0",
  gcc: "exit 0",
  npm: "exit 0",
  initdb: "exit 0",
  postgres: "exit 0",
  pg_isready: "exit 0",
  psql: "exit 0",
};
const ALL: Tool[] = ["java", "mvn", "go", "gcc", "npm", "postgresql"];
const noDebianPostgres = path.join(scratch, "no-postgresql-here");

describe("stack prerequisites", () => {
  it("finds nothing missing when every program is on PATH at a good version", () => {
    const PATH = fakeBin("good", GOOD);
    assert.deepEqual(checkTools(ALL, { PATH, postgresRoot: noDebianPostgres }), []);
  });

  it("names go when it is hidden from PATH, and only go", () => {
    const { go: _go, ...rest } = GOOD;
    const PATH = fakeBin("no-go", rest);
    const missing = checkTools(ALL, { PATH, postgresRoot: noDebianPostgres });
    assert.deepEqual(missing, [{ tool: "go", problem: "not on PATH" }]);
    const message = describeMissing(missing);
    assert.match(message, /go >= 1\.24 \(builds FerretDB/);
    assert.match(message, /https:\/\/go\.dev\/dl\//);
    assert.match(message, /nothing was started/);
  });

  it("lists every missing program in one message, each with the command that installs it", () => {
    const PATH = fakeBin("bare", {});
    const missing = checkTools(ALL, { PATH, postgresRoot: noDebianPostgres });
    assert.deepEqual(
      missing.map((m) => m.tool),
      ALL,
    );
    const message = describeMissing(missing);
    for (const line of [
      "sudo apt-get install -y openjdk-17-jre-headless",
      "sudo apt-get install -y maven",
      "sudo apt-get install -y gcc",
      "sudo apt-get install -y postgresql",
      "sudo apt-get install -y openjdk-17-jre-headless maven gcc postgresql",
    ]) {
      assert.ok(message.includes(line), `${line} in:\n${message}`);
    }
  });

  it("refuses a Java or Go that is too old for Kafka 4 and FerretDB 1.24", () => {
    const PATH = fakeBin("old", {
      ...GOOD,
      java: `echo 'openjdk version "11.0.2" 2019-01-15' >&2`,
      go: "echo 'go version go1.19.8 linux/amd64'",
    });
    const missing = checkTools(["java", "go"], { PATH });
    assert.deepEqual(
      missing.map((m) => m.tool),
      ["java", "go"],
    );
    assert.match(missing[0]?.problem ?? "", /Java 11/);
    assert.match(missing[1]?.problem ?? "", /go1\.19/);
  });

  it("reads the versions the tools print", () => {
    assert.equal(javaMajor('openjdk version "17.0.15" 2025-04-15'), 17);
    assert.equal(javaMajor('java version "1.8.0_392"'), 8);
    assert.equal(javaMajor('openjdk version "21" 2023-09-19'), 21);
    assert.deepEqual(goVersion("go version go1.26.8 linux/amd64"), [1, 26]);
    assert.equal(goVersion("nonsense"), undefined);
  });

  it("`stack:up` without go on PATH prints the one message and starts nothing (no lock, no install)", () => {
    // This machine's PATH without the directories that hold go. Own AGENTMETER_HOME and an empty
    // AGENTMETER_CACHE, so FerretDB needs building (hence go) and the running stack is never touched.
    const PATH = (process.env.PATH ?? "")
      .split(path.delimiter)
      .filter((dir) => dir !== "" && !existsSync(path.join(dir, "go")))
      .join(path.delimiter);
    const home = path.join(scratch, "home");
    const cache = path.join(scratch, "cache");
    mkdirSync(home);
    mkdirSync(cache);
    // A guard: should the check ever let `up` through, taking the lock fails on this file instead of
    // installing or starting anything.
    writeFileSync(path.join(home, "run"), "not a directory\n");
    const result = spawnSync(process.execPath, ["--import", "tsx", "scripts/stack.ts", "up"], {
      cwd: REPO,
      env: { ...process.env, PATH, AGENTMETER_HOME: home, AGENTMETER_CACHE: cache },
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(result.status, 1, result.stderr);
    assert.match(result.stderr, /^PREREQUISITE_MISSING: /m);
    assert.match(result.stderr, /go >= 1\.24 \(builds FerretDB from source \(first run\)\): not on PATH/);
    assert.equal(result.stdout, "");
    assert.deepEqual(readdirSync(cache), [], "nothing installed");
    assert.deepEqual(readdirSync(home), ["run"], "no lock, no data, no logs");
  });
});
