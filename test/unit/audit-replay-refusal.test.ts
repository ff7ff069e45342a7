import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { suffixedConfig } from "../../pipeline/audit/namespace.ts";
import {
  type NamespaceContents,
  refusalOfReads,
  usedNamespaceRefusal,
} from "../../pipeline/audit/replay-refusal.ts";
import { loadConfig } from "../../pipeline/config.ts";
import { AgentmeterError } from "../../schemas/errors.ts";

/**
 * A replay into a suffix already used is refused: by its MongoDB databases (records found applied), its
 * ClickHouse rows (compared beside the new ones), its consumer group's committed offsets (the replay
 * would start at the end of the topic), its hold-decision reply topic (earlier decisions read as
 * differing copies) or its dead-letter, budget-event and budget-state topics (outputs appended twice). Reusing the suffix needs all of its namespace dropped (docs/audit.md, "replay"):
 * the refusal names what it found in each store, and everything to drop, in one line.
 */
describe("replay: the refusal of a used suffix", () => {
  const live = loadConfig({});
  const replay = suffixedConfig(live, "r1");
  const other = suffixedConfig(live, "r10");

  /** A namespace every store of which is empty, with what such stores still report. */
  const empty: NamespaceContents = {
    // The live databases, another suffix's, and the server's own: none is this namespace's.
    mongoDatabases: [
      "admin",
      "config",
      "local",
      live.AGENTMETER_PLATFORM_DB,
      live.AGENTMETER_WORKFLOW_DB,
      `${live.AGENTMETER_APP_DB_PREFIX}app-1`,
      other.AGENTMETER_PLATFORM_DB,
      other.AGENTMETER_WORKFLOW_DB,
      `${other.AGENTMETER_APP_DB_PREFIX}app-1`,
    ],
    // A started, stopped processor: migrations recorded, tables created empty, views without a count.
    clickhouseTables: [
      { name: "schema_migrations", total_rows: "9" },
      { name: "usage_events", total_rows: "0" },
      { name: "usage_events_mv", total_rows: null },
      { name: "adjustments", total_rows: 0 },
    ],
    groupOffsets: [
      { partition: 0, offset: "-1" },
      { partition: 1, offset: "-1" },
    ],
    // Created by a processor that never decided a hold.
    replyOffsets: [
      { partition: 0, low: "0", high: "0" },
      { partition: 1, low: "0", high: "0" },
    ],
    // Created, never written (the state topic compacted: its low watermark is 0 until a segment is cleaned).
    outputOffsets: {
      [replay.AGENTMETER_DLQ_TOPIC]: [{ partition: 0, low: "0", high: "0" }],
      [replay.AGENTMETER_EVENTS_TOPIC]: [{ partition: 0, low: "0", high: "0" }],
      [replay.AGENTMETER_STATE_TOPIC]: [],
    },
  };
  const withContents = (change: Partial<NamespaceContents>): NamespaceContents => ({ ...empty, ...change });
  const refusal = (contents: NamespaceContents): string => {
    const message = usedNamespaceRefusal(replay, "r1", contents);
    assert.ok(message !== undefined, "refused");
    return message;
  };
  /** The part naming what was found. */
  const foundIn = (message: string): string =>
    /^--suffix r1: the replay namespace is not empty \((.*)\)\. To replay/.exec(message)?.[1] ?? "";

  /** Whatever was found, the line names every part of the namespace to drop and the way out. */
  function assertNamesAllToDrop(message: string): void {
    const drop = message.slice(message.indexOf("To replay into this suffix again, drop all of it: "));
    for (const name of [
      replay.AGENTMETER_PLATFORM_DB,
      replay.AGENTMETER_WORKFLOW_DB,
      "R_r1_{app}",
      `ClickHouse database ${replay.CLICKHOUSE_DATABASE}`,
      `consumer group ${replay.AGENTMETER_GROUP_ID}`,
      `topics ${replay.AGENTMETER_HOLDS_TOPIC}`,
      replay.AGENTMETER_DLQ_TOPIC,
      replay.AGENTMETER_EVENTS_TOPIC,
      replay.AGENTMETER_STATE_TOPIC,
    ])
      assert.ok(drop.includes(name), `${name} in: ${drop}`);
    assert.match(message, /or choose another suffix$/);
    assert.doesNotMatch(message, /\n/, "one line");
  }

  it("suffixes the name of every store (the names the drop list gives)", () => {
    assert.equal(replay.CLICKHOUSE_DATABASE, `${live.CLICKHOUSE_DATABASE}_r1`);
    assert.equal(replay.AGENTMETER_GROUP_ID, `${live.AGENTMETER_GROUP_ID}.replay.r1`);
    assert.equal(replay.AGENTMETER_HOLDS_TOPIC, `${live.AGENTMETER_HOLDS_TOPIC}.replay.r1`);
    assert.equal(replay.AGENTMETER_DLQ_TOPIC, `${live.AGENTMETER_DLQ_TOPIC}.replay.r1`);
    assert.equal(replay.AGENTMETER_EVENTS_TOPIC, `${live.AGENTMETER_EVENTS_TOPIC}.replay.r1`);
    assert.equal(replay.AGENTMETER_STATE_TOPIC, `${live.AGENTMETER_STATE_TOPIC}.replay.r1`);
  });

  describe("given nothing of the namespace in any store, the replay goes ahead", () => {
    it("stores as a started and stopped processor leaves them (migrations, empty tables, empty topic)", () => {
      assert.equal(usedNamespaceRefusal(replay, "r1", empty), undefined);
    });

    it("stores that hold nothing at all (no database, no group, no topic)", () => {
      const none = {
        mongoDatabases: [],
        clickhouseTables: [],
        groupOffsets: [],
        replyOffsets: [],
        outputOffsets: {},
      };
      assert.equal(usedNamespaceRefusal(replay, "r1", none), undefined);
    });
  });

  describe("given one store used alone, it is refused naming that store only", () => {
    it("MongoDB databases (as before)", () => {
      const message = refusal(
        withContents({
          mongoDatabases: [...empty.mongoDatabases, "R_r1_app-1", replay.AGENTMETER_PLATFORM_DB],
        }),
      );
      assert.match(
        message,
        /^--suffix r1: the replay namespace is not empty \(MongoDB MozaiksPlatform_r1, R_r1_app-1\)\. /,
      );
      assertNamesAllToDrop(message);
    });

    it("the workflow database alone", () => {
      const message = refusal(withContents({ mongoDatabases: [replay.AGENTMETER_WORKFLOW_DB] }));
      assert.equal(foundIn(message), `MongoDB ${replay.AGENTMETER_WORKFLOW_DB}`);
    });

    it("ClickHouse rows, the MongoDB databases dropped", () => {
      const message = refusal(
        withContents({
          clickhouseTables: [
            ...empty.clickhouseTables,
            { name: "usage_by_hour", total_rows: "12" },
            { name: "adjustments", total_rows: 40 },
          ],
        }),
      );
      assert.equal(
        foundIn(message),
        `ClickHouse ${replay.CLICKHOUSE_DATABASE} with rows in adjustments, usage_by_hour`,
      );
      assertNamesAllToDrop(message);
    });

    it("ClickHouse counts past 2^53 (UInt64 as a string)", () => {
      const message = refusal(
        withContents({ clickhouseTables: [{ name: "usage_events", total_rows: "18446744073709551615" }] }),
      );
      assert.equal(foundIn(message), `ClickHouse ${replay.CLICKHOUSE_DATABASE} with rows in usage_events`);
    });

    it("committed offsets of the consumer group, the databases dropped (offset 0 is committed too)", () => {
      const message = refusal(
        withContents({
          groupOffsets: [
            { partition: 1, offset: "0" },
            { partition: 0, offset: "-1" },
          ],
        }),
      );
      assert.equal(
        foundIn(message),
        `consumer group ${replay.AGENTMETER_GROUP_ID} with offsets committed on partition 1`,
      );
      assertNamesAllToDrop(message);
    });

    it("hold decisions still on the reply topic", () => {
      const message = refusal(
        withContents({
          replyOffsets: [
            { partition: 0, low: "0", high: "7" },
            { partition: 1, low: "0", high: "5" },
          ],
        }),
      );
      assert.equal(foundIn(message), `topic ${replay.AGENTMETER_HOLDS_TOPIC} with 12 messages`);
      assertNamesAllToDrop(message);
    });

    it("a reply topic written before whose messages retention removed (an audit could not be complete)", () => {
      const message = refusal(withContents({ replyOffsets: [{ partition: 0, low: "3", high: "3" }] }));
      assert.equal(foundIn(message), `topic ${replay.AGENTMETER_HOLDS_TOPIC} with 3 expired messages`);
      const both = refusal(
        withContents({
          replyOffsets: [
            { partition: 0, low: "3", high: "4" },
            { partition: 1, low: "0", high: "0" },
          ],
        }),
      );
      assert.equal(foundIn(both), `topic ${replay.AGENTMETER_HOLDS_TOPIC} with 1 message (3 more expired)`);
    });
  });

  it("given output topics an earlier replay wrote, each is named with its count (the new outputs would be appended)", () => {
    const message = refusal(
      withContents({
        outputOffsets: {
          [replay.AGENTMETER_DLQ_TOPIC]: [{ partition: 0, low: "0", high: "2" }],
          [replay.AGENTMETER_EVENTS_TOPIC]: [
            { partition: 0, low: "0", high: "40" },
            { partition: 1, low: "0", high: "0" },
          ],
          [replay.AGENTMETER_STATE_TOPIC]: [{ partition: 0, low: "5", high: "5" }],
        },
      }),
    );
    assert.equal(
      foundIn(message),
      [
        `topic ${replay.AGENTMETER_DLQ_TOPIC} with 2 messages`,
        `topic ${replay.AGENTMETER_EVENTS_TOPIC} with 40 messages`,
        `topic ${replay.AGENTMETER_STATE_TOPIC} with 5 expired messages`,
      ].join("; "),
    );
    assertNamesAllToDrop(message);
    const eventsOnly = refusal(
      withContents({
        outputOffsets: { [replay.AGENTMETER_EVENTS_TOPIC]: [{ partition: 3, low: "0", high: "1" }] },
      }),
    );
    assert.equal(foundIn(eventsOnly), `topic ${replay.AGENTMETER_EVENTS_TOPIC} with 1 message`);
  });

  it("given several stores used, names each, in the order MongoDB, ClickHouse, group, topic", () => {
    const message = refusal({
      mongoDatabases: ["R_r1_b", "R_r1_a", "admin"],
      clickhouseTables: [{ name: "usage_events", total_rows: "3000" }],
      groupOffsets: [
        { partition: 2, offset: "100" },
        { partition: 0, offset: "90" },
        { partition: 1, offset: "-1" },
      ],
      replyOffsets: [{ partition: 0, low: "0", high: "1" }],
      outputOffsets: {},
    });
    assert.equal(
      foundIn(message),
      [
        "MongoDB R_r1_a, R_r1_b",
        `ClickHouse ${replay.CLICKHOUSE_DATABASE} with rows in usage_events`,
        `consumer group ${replay.AGENTMETER_GROUP_ID} with offsets committed on partitions 0, 2`,
        `topic ${replay.AGENTMETER_HOLDS_TOPIC} with 1 message`,
      ].join("; "),
    );
    assertNamesAllToDrop(message);
  });

  it("given many of a kind, lists three and counts the rest", () => {
    const message = refusal({
      mongoDatabases: ["R_r1_e", "R_r1_d", "R_r1_c", "R_r1_b", "R_r1_a"],
      clickhouseTables: ["a", "b", "c", "d"].map((name) => ({ name, total_rows: "1" })),
      groupOffsets: [0, 1, 2, 3, 4, 5].map((partition) => ({ partition, offset: "1" })),
      replyOffsets: [],
      outputOffsets: {},
    });
    assert.match(message, /\(MongoDB R_r1_a, R_r1_b, R_r1_c and 2 more; /);
    assert.match(message, / with rows in a, b, c and 1 more; /);
    assert.match(message, / committed on partitions 0, 1, 2 and 3 more\)/);
  });

  it("the full line, as docs/audit.md shows it", () => {
    const message = refusal(
      withContents({
        mongoDatabases: ["MozaiksPlatform_r1", "R_r1_app-1"],
        clickhouseTables: [
          { name: "adjustments", total_rows: "2" },
          { name: "usage_events", total_rows: "3000" },
        ],
        groupOffsets: [0, 1, 2].map((partition) => ({ partition, offset: "1000" })),
      }),
    );
    assert.equal(
      message,
      "--suffix r1: the replay namespace is not empty (MongoDB MozaiksPlatform_r1, R_r1_app-1; ClickHouse agentmeter_r1 with rows in adjustments, usage_events; consumer group agentmeter-processor.replay.r1 with offsets committed on partitions 0, 1, 2). " +
        "To replay into this suffix again, drop all of it: the MongoDB databases MozaiksPlatform_r1, autogen_ai_agents_r1 and R_r1_{app} (every app), the ClickHouse database agentmeter_r1, the Kafka consumer group agentmeter-processor.replay.r1 (its committed offsets) and the topics agentmeter.hold-decisions.v1.replay.r1 (its hold decisions), agentmeter.deadletter.v1.replay.r1, agentmeter.budget-events.v1.replay.r1, agentmeter.budget-state.v1.replay.r1 (its dead letters, budget events and budget states); or choose another suffix",
    );
    const doc = readFileSync(new URL("../../docs/audit.md", import.meta.url), "utf8");
    assert.ok(doc.includes(`\nagentmeter replay: ${message}\n`), "docs/audit.md shows this line");
  });

  describe("given a store that could not be read, its error, never a verdict", () => {
    const unreachable = new AgentmeterError("SERVICE_UNAVAILABLE", "ClickHouse at http://x does not answer");
    const used = withContents({ mongoDatabases: [replay.AGENTMETER_PLATFORM_DB] });
    const fulfilled = <T>(value: T): PromiseFulfilledResult<T> => ({ status: "fulfilled", value });
    const rejected = (reason: unknown): PromiseRejectedResult => ({ status: "rejected", reason });
    const reads = (contents: NamespaceContents) => ({
      mongo: fulfilled(contents.mongoDatabases),
      clickhouse: fulfilled(contents.clickhouseTables),
      kafka: fulfilled({
        groupOffsets: contents.groupOffsets,
        replyOffsets: contents.replyOffsets,
        outputOffsets: contents.outputOffsets,
      }),
    });

    it("every store read: the same decision as from the contents", () => {
      assert.equal(refusalOfReads(replay, "r1", reads(empty)), undefined);
      assert.equal(refusalOfReads(replay, "r1", reads(used)), usedNamespaceRefusal(replay, "r1", used));
    });

    it("one store not read, the others empty: its error, not 'empty'", () => {
      assert.throws(
        () => refusalOfReads(replay, "r1", { ...reads(empty), clickhouse: rejected(unreachable) }),
        (error) => error === unreachable,
      );
    });

    it("one store not read, another used: its error, not the refusal", () => {
      assert.throws(
        () => refusalOfReads(replay, "r1", { ...reads(used), kafka: rejected(unreachable) }),
        (error) => error === unreachable,
      );
    });

    it("several not read: the first in the order MongoDB, ClickHouse, Kafka", () => {
      const mongo = new AgentmeterError("SERVICE_UNAVAILABLE", "MongoDB at mongodb://x does not answer");
      const kafka = new Error("kafka");
      assert.throws(
        () =>
          refusalOfReads(replay, "r1", {
            ...reads(used),
            kafka: rejected(kafka),
            clickhouse: rejected(unreachable),
          }),
        (error) => error === unreachable,
      );
      assert.throws(
        () =>
          refusalOfReads(replay, "r1", {
            mongo: rejected(mongo),
            clickhouse: rejected(unreachable),
            kafka: rejected(kafka),
          }),
        (error) => error === mongo,
      );
    });
  });
});
