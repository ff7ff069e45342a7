import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { recomputeWorkerUrl } from "../../pipeline/audit/worker-code.ts";

/**
 * The audit's worker bundle (pipeline/audit/worker-code.ts) is one file per code version in the
 * temporary directory: other versions' bundles unused for a week are removed, and a bundle removed
 * under a running process is built again.
 */
describe("audit worker bundle (pipeline/audit/worker-code.ts)", () => {
  const savedTmp = process.env.TMPDIR;
  let root = "";
  before(() => {
    root = mkdtempSync(join(tmpdir(), "agentmeter-worker-code-test-"));
    // os.tmpdir() reads TMPDIR on each call: the bundles go to this test's own directory.
    process.env.TMPDIR = root;
  });
  after(() => {
    if (savedTmp === undefined) delete process.env.TMPDIR;
    else process.env.TMPDIR = savedTmp;
    rmSync(root, { recursive: true, force: true });
  });

  function fakeBundle(name: string, ageDays: number): string {
    const dir = join(root, name);
    mkdirSync(dir);
    writeFileSync(join(dir, "recompute-worker.mjs"), "export {};\n");
    const at = new Date(Date.now() - ageDays * 24 * 3_600_000);
    utimesSync(dir, at, at);
    return dir;
  }

  it("removes other versions' bundles unused for a week, and keeps recent ones and other files", async () => {
    const old = fakeBundle("agentmeter-audit-worker-0000000000000000", 8);
    const recent = fakeBundle("agentmeter-audit-worker-1111111111111111", 6);
    const unrelated = fakeBundle("someone-elses-dir", 30);
    const url = await recomputeWorkerUrl();
    const file = fileURLToPath(url);
    assert.ok(file.startsWith(root), file);
    assert.ok(existsSync(file));
    assert.equal(existsSync(old), false);
    assert.equal(existsSync(recent), true);
    assert.equal(existsSync(unrelated), true);
  });

  it("builds the bundle again when it was removed under the process", async () => {
    const first = fileURLToPath(await recomputeWorkerUrl());
    rmSync(join(first, ".."), { recursive: true, force: true });
    const again = fileURLToPath(await recomputeWorkerUrl());
    assert.equal(again, first);
    assert.ok(existsSync(again));
    // The file alone removed (its directory kept).
    rmSync(again);
    assert.equal(fileURLToPath(await recomputeWorkerUrl()), first);
    assert.ok(existsSync(first));
  });
});
