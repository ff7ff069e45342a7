import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { promisify } from "node:util";

/**
 * The examples as a reader runs them (mock mode: the billing core in process, no server), through the
 * package's own entry: an example that no longer runs or whose figures moved fails here.
 */
const run = promisify(execFile);

async function example(name: string): Promise<string> {
  const { stdout } = await run(process.execPath, ["--import", "tsx", `examples/${name}.ts`], {
    env: { ...process.env, AGENTMETER_MOCK: "1", LOG_LEVEL: "warn" },
    timeout: 60_000,
  });
  return stdout;
}

describe("examples (mock mode)", () => {
  it("parallel-turns: holds let six of twelve 1,500-token turns run on a 10,000-token trial", async () => {
    const out = await example("parallel-turns");
    const lines = out.trim().split("\n");
    assert.equal(lines.filter((line) => /^turn \d+: granted/.test(line)).length, 6, out);
    assert.equal(lines.filter((line) => /^turn \d+: refused before the LLM call/.test(line)).length, 6, out);
    assert.match(out, /insufficient_tokens/);
    // 10,000 - 6 x 1,400 billed; the unused 100 of each hold came back.
    assert.match(lines.at(-1) ?? "", /^6 of 12 turns ran; 1600 tokens left, 0 held/);
  });

  it("app-chat: the trial runs out, the chat pauses, a top-up resumes it", async () => {
    const out = await example("app-chat");
    assert.match(out, /can continue false/);
    assert.match(out, /resumed: true/);
  });

  it("platform-build: a creator's build session is summarised", async () => {
    const out = await example("platform-build");
    assert.match(out, /session: \d+ tokens, cost [\d.]+, agents /);
  });
});
