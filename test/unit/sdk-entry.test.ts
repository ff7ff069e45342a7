import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

/**
 * An agent runtime imports `agentmeter` (sdk/index.ts) and must not load the database drivers; reads of
 * the stores are `agentmeter/admin` (sdk/admin.ts). Checked in a fresh process, since this one may have
 * loaded anything: the child imports the entry, runs a session in mock mode, and lists the packages
 * that were loaded (CommonJS packages imported from ES modules land in the require cache).
 */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const DRIVERS = ["mongodb", "@clickhouse/client"];

function childScript(entry: string, work: string): string {
  return `
    import { createRequire } from "node:module";
    const sdk = await import(${JSON.stringify(entry)});
    ${work}
    const loaded = new Set();
    for (const file of Object.keys(createRequire(import.meta.url).cache)) {
      const at = file.lastIndexOf("/node_modules/");
      if (at < 0) continue;
      const [scope, name] = file.slice(at + "/node_modules/".length).split("/");
      loaded.add(scope.startsWith("@") ? scope + "/" + name : scope);
    }
    console.log(JSON.stringify([...loaded]));
  `;
}

async function packagesLoadedBy(entry: string, work = ""): Promise<string[]> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    ["--import", "tsx", "--input-type=module", "-e", childScript(entry, work)],
    { cwd: ROOT, env: { ...process.env, LOG_LEVEL: "silent" }, timeout: 60_000 },
  );
  return JSON.parse(stdout.trim().split("\n").pop()!) as string[];
}

const MOCK_SESSION = `
  const meter = await sdk.Agentmeter.connect({ mock: true });
  const chat = meter.tokenManager({
    enterprise_id: "app-1", mozaiks_user_id: "creator-1", platform_user_id: "user-1", workflow_name: "chat",
  });
  await chat.initializeBudget();
  await chat.trackUsage({ A: { prompt_tokens: 10, completion_tokens: 5 } });
  await chat.finalizeSession();
  await meter.close();
`;

describe("the SDK's main entry point", () => {
  it("importing it and running a session in mock mode loads no database driver", async () => {
    const loaded = await packagesLoadedBy("./sdk/index.ts", MOCK_SESSION);
    assert.ok(loaded.includes("kafkajs"), `the check sees packages: ${loaded.join(", ")}`);
    for (const driver of DRIVERS) assert.ok(!loaded.includes(driver), `${driver} was loaded`);
  });

  it("the admin entry point is where the drivers are", async () => {
    const loaded = await packagesLoadedBy("./sdk/admin.ts");
    for (const driver of DRIVERS) assert.ok(loaded.includes(driver), `${driver} was not loaded`);
  });
});
