/**
 * Tests that need a tool beyond npm (helm, promtool, Chromium) skip with a reason where it is missing,
 * so a developer without it still gets a green run; CI sets AGENTMETER_REQUIRE_TOOLS=1 (scripts/ci-tools.sh
 * installs them), and there a missing tool fails the test instead of hiding it.
 */
export function skipWithout(tool: string | undefined, reason: string): string | false {
  if (tool !== undefined) return false;
  if (process.env.AGENTMETER_REQUIRE_TOOLS === "1") return false;
  return reason;
}

/** In a test that did not skip: the tool, or a failure naming what is missing. */
export function requireTool(tool: string | undefined, reason: string): string {
  if (tool === undefined) throw new Error(`required tool missing (AGENTMETER_REQUIRE_TOOLS=1): ${reason}`);
  return tool;
}
