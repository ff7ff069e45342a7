import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { removeStaleLocks } from "../../deploy/local/postgres.ts";
import { childrenOf, processStartTime, stopGroup } from "../../deploy/local/process.ts";

/**
 * A zombie on demand: `sh` starts a short `sleep` and execs into a long one, which never waits for it. This is
 * what a killed server becomes under a PID 1 that does not reap orphans (CI stop 22: PostgreSQL refused to
 * start over its killed predecessor's lock file, and the rest of the run broke on the missing store).
 */
async function withZombie(): Promise<{ parent: ChildProcess; zombie: number }> {
  const parent = spawn("sh", ["-c", "sleep 0.05 & exec sleep 30"], { detached: true, stdio: "ignore" });
  const pid = parent.pid;
  assert.ok(pid !== undefined);
  for (let tries = 0; tries < 100; tries++) {
    await sleep(50);
    const zombie = zombieChildOf(pid);
    if (zombie !== undefined) return { parent, zombie };
  }
  throw new Error("no zombie appeared");
}

/** A child of `pid` in state Z, read from /proc. */
function zombieChildOf(pid: number): number | undefined {
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const [state, parent] = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (state === "Z" && Number(parent) === pid) return Number(entry);
    } catch {
      // Gone while we looked.
    }
  }
  return undefined;
}

describe("local stack: exited processes are not mistaken for running ones", {
  skip: process.platform !== "linux",
}, () => {
  const parents: ChildProcess[] = [];
  after(() => {
    for (const parent of parents) parent.kill("SIGKILL");
  });

  it("given a zombie, then it has no start time and is not a running child of its parent", async () => {
    const { parent, zombie } = await withZombie();
    parents.push(parent);
    assert.equal(processStartTime(zombie), undefined, "a zombie is not running");
    assert.ok(processStartTime(parent.pid ?? 0) !== undefined, "its parent is");
    assert.deepEqual(childrenOf(parent.pid ?? 0), [], "the zombie is not a running child");
  });

  it("given PostgreSQL's lock files name an exited postmaster, then they are removed; naming a live one, it stays", async () => {
    const { parent, zombie } = await withZombie();
    parents.push(parent);
    const data = await mkdtemp(path.join(tmpdir(), "agentmeter-pg-lock-"));
    const lock = path.join(data, "postmaster.pid");
    const socketLock = path.join(data, ".s.PGSQL.15433.lock");
    const logged: string[] = [];
    try {
      await writeFile(lock, `${zombie}\n${data}\n`);
      await writeFile(socketLock, `${zombie}\n${data}\n`);
      await removeStaleLocks([lock, socketLock], (line) => logged.push(line));
      await assert.rejects(readFile(lock), { code: "ENOENT" }, "the zombie's data directory lock is gone");
      await assert.rejects(readFile(socketLock), { code: "ENOENT" }, "the zombie's socket lock is gone");
      assert.match(logged.join("\n"), new RegExp(`exited postmaster ${zombie}`));

      await writeFile(lock, `${parent.pid}\n${data}\n`);
      await removeStaleLocks([lock, socketLock], (line) => logged.push(line));
      assert.equal(
        (await readFile(lock, "utf8")).split("\n")[0],
        String(parent.pid),
        "a live pid's lock stays",
      );
    } finally {
      await rm(data, { recursive: true, force: true });
    }
  });

  it("given a process group whose leader is a zombie and nothing else runs, then stopGroup returns at once", async () => {
    // The group leader (sh → sleep 30) is killed; its parent (this process) reaps it, so use the zombie's group:
    // the orphan child shares the leader's group and is itself a zombie until its parent exits.
    const { parent } = await withZombie();
    parents.push(parent);
    const pid = parent.pid ?? 0;
    const started = Date.now();
    await stopGroup(pid, "SIGKILL", 10_000);
    const elapsed = Date.now() - started;
    assert.equal(processStartTime(pid), undefined, "the group leader is gone");
    assert.ok(elapsed < 5_000, `stopGroup waited ${elapsed} ms on a group with nothing running`);
  });
});
