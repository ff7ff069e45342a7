import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { TestPipeline } from "../support/harness.ts";
import { configEnv, eventually } from "../support/pipeline.ts";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * What an operator does: `npm run processor`, then SIGTERM to the process they started (systemd, a
 * supervisor, Ctrl-C in a script). npm forwards the signal to its child; the script `exec`s node, so the
 * child is node itself and drains, commits and exits, leaving no orphan behind.
 */
describe("sigterm: `npm run processor` stopped with SIGTERM", { timeout: 5 * 60_000 }, () => {
  const records = [
    ...generateWorkload({ seed: 5, records: 2_000, apps: 4, usersPerApp: 5, runId: "sigterm" }),
  ];
  let pipeline: TestPipeline;

  before(async () => {
    pipeline = await TestPipeline.create();
    await pipeline.produce(records);
  });

  after(async () => {
    await pipeline?.close();
  });

  it("stops node itself: drained, committed, exit 0, no process left", async () => {
    const npm = spawn("npm", ["run", "--silent", "processor"], {
      env: { ...process.env, ...configEnv(pipeline.config), LOG_LEVEL: "info" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    npm.stdout?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    npm.stderr?.on("data", (chunk: Buffer) => {
      output += chunk.toString("utf8");
    });
    const exited = new Promise<number | null>((resolve) => npm.on("exit", (code) => resolve(code)));
    try {
      await eventually(
        "the processor to start",
        async () => (output.includes('"msg":"processor started"') ? true : undefined),
        60_000,
      );
      await pipeline.caughtUp();
      const children = execFileSync("ps", ["-o", "pid=,comm=", "--ppid", String(npm.pid)], {
        encoding: "utf8",
      })
        .trim()
        .split("\n")
        .map((line) => line.trim().split(/\s+/));
      // With `exec`, npm's child is node (no shell between them).
      assert.deepEqual(
        children.map(([, comm]) => comm),
        ["node"],
        `npm's children: ${JSON.stringify(children)}`,
      );
      const nodePid = Number(children[0]![0]);

      const signalled = Date.now();
      npm.kill("SIGTERM");
      const code = await Promise.race([exited, sleep(45_000).then(() => "timeout" as const)]);
      assert.notEqual(code, "timeout", `npm did not exit within 45 s of SIGTERM:\n${output.slice(-2_000)}`);
      await eventually("node to be gone", async () => (alive(nodePid) ? undefined : true), 10_000);
      assert.ok(output.includes('"signal":"SIGTERM"'), "node logged the SIGTERM it received");
      assert.ok(output.includes('"msg":"stopping: finishing the batch in hand"'));
      assert.equal(code, 0, `exit code ${String(code)}:\n${output.slice(-2_000)}`);
      assert.equal(await pipeline.lag(), 0n);
      process.stdout.write(`# SIGTERM to exit: ${Date.now() - signalled} ms\n`);
      await pipeline.assertStoresMatch(records);
    } finally {
      if (npm.exitCode === null) npm.kill("SIGKILL");
    }
  });
});
