import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { suffixedConfig } from "../../pipeline/audit/namespace.ts";
import { usedNamespaceRefusal } from "../../pipeline/audit/replay.ts";
import { loadConfig } from "../../pipeline/config.ts";

/**
 * A replay into a suffix already used is refused (its records would be found applied). Reusing the
 * suffix needs all of its namespace dropped (docs/audit.md, "replay"): the refusal must name it all, not
 * only the MongoDB databases it found.
 */
describe("replay: the refusal of a used suffix", () => {
  const live = loadConfig({});
  const replay = suffixedConfig(live, "r1");

  it("names the MongoDB databases found, the ClickHouse database and the consumer group to drop", () => {
    const message = usedNamespaceRefusal(replay, "r1", ["MozaiksPlatform_r1", "R_r1_app-1"]);
    assert.match(
      message,
      /^--suffix r1: the replay namespace is not empty \(MongoDB MozaiksPlatform_r1, R_r1_app-1\)/,
    );
    assert.ok(message.includes(`ClickHouse database ${replay.CLICKHOUSE_DATABASE} `), message);
    assert.ok(message.includes(`consumer group ${replay.AGENTMETER_GROUP_ID} `), message);
    assert.equal(replay.CLICKHOUSE_DATABASE, `${live.CLICKHOUSE_DATABASE}_r1`);
    assert.equal(replay.AGENTMETER_GROUP_ID, `${live.AGENTMETER_GROUP_ID}.replay.r1`);
    // Every MongoDB database of the namespace, not only those found, and the way out.
    for (const name of [replay.AGENTMETER_PLATFORM_DB, replay.AGENTMETER_WORKFLOW_DB, "R_r1_{app}"])
      assert.ok(message.includes(name), `${name} in: ${message}`);
    assert.match(message, /or choose another suffix$/);
    assert.doesNotMatch(message, /\n/, "one line");
  });

  it("counts the databases it does not list", () => {
    const message = usedNamespaceRefusal(replay, "r1", ["a", "b", "c", "d", "e"]);
    assert.match(message, /\(MongoDB a, b, c and 2 more\)/);
  });
});
