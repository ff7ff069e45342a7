import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { describe, it } from "node:test";
import { runDemo } from "../../pipeline/cli/demo.ts";
import { configEnv, isolatedConfig } from "../support/pipeline.ts";

async function demo(env: Record<string, string>): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await runDemo(
    { records: 600, apps: 2, usersPerApp: 4 },
    {
      stdin: process.stdin,
      stdout: { write: (text: string) => (out += text) },
      stderr: { write: (text: string) => (err += text) },
    },
    env,
  );
  return { code, out, err };
}

/**
 * The README's first command, end to end on the real servers (its own topics and databases): the stores
 * hold what the billing core computes offline, billed and paid, with operator records signed where the
 * processor requires it.
 */
describe("demo: the pipeline's main job, checked against the billing core", () => {
  it("without an operator secret (a laptop), every figure agrees: exit 0 and OK", async () => {
    const { code, out, err } = await demo(configEnv(await isolatedConfig()));
    assert.equal(code, 0, err);
    assert.match(out, /^Check: billed .* paid (?!0 )\S+ offline, \S+ in MongoDB; .*: OK$/m);
  });

  it("with AGENTMETER_OPERATOR_SECRET set, the demo signs its top-ups, and the paid amounts agree", async () => {
    const secret = randomBytes(32).toString("hex");
    const { code, out, err } = await demo(
      configEnv(await isolatedConfig({ AGENTMETER_OPERATOR_SECRET: secret })),
    );
    assert.equal(code, 0, err);
    const check = /^Check: billed (\S+) by .* paid (\S+) offline, (\S+) in MongoDB; .*: OK$/m.exec(out);
    assert.ok(check !== null, out);
    assert.equal(check[2], check[3]);
    assert.notEqual(check[2], "0", "the workload has paid top-ups");
  });
});
