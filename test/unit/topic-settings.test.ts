import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  letterBytesFor,
  type TopicSettings,
  topicSettingProblems,
  topicSettingWarnings,
} from "../../pipeline/topic-settings.ts";

const topics = {
  AGENTMETER_INPUT_TOPIC: "in",
  AGENTMETER_DLQ_TOPIC: "dlq",
  AGENTMETER_STATE_TOPIC: "state",
};

function settings(input: string, letters: string, policy: string): TopicSettings {
  return new Map([
    ["in", new Map([["max.message.bytes", input]])],
    ["dlq", new Map([["max.message.bytes", letters]])],
    ["state", new Map([["cleanup.policy", policy]])],
  ]);
}

describe("topic settings an operator's topics must have", () => {
  it("a dead-letter topic that takes a letter of the largest input record, and a compacted state topic, pass", () => {
    assert.deepEqual(
      topicSettingProblems(settings("1048588", String(8 * 1024 * 1024), "compact"), topics),
      [],
    );
    assert.deepEqual(topicSettingProblems(settings("1048588", "8388608", "compact,delete"), topics), []);
    assert.deepEqual(
      topicSettingProblems(settings("1048588", String(letterBytesFor(1_048_588)), "compact"), topics),
      [],
      "exactly enough",
    );
  });

  it("a dead-letter topic at the broker's default 1 MiB, or a state topic with deletion only: one line each, with the fix", () => {
    const problems = topicSettingProblems(settings("1048588", "1048588", "delete"), topics);
    assert.equal(problems.length, 2);
    assert.match(problems[0]!, /^topic dlq: max\.message\.bytes is 1048588, .* needs 1463656: raise it/);
    assert.match(problems[0]!, /--add-config max\.message\.bytes=8388608\)$/);
    assert.match(problems[1]!, /^topic state: cleanup\.policy is delete, .*cleanup\.policy=compact$/);
    assert.equal(
      topicSettingProblems(settings("1048588", String(letterBytesFor(1_048_588) - 1), "compact"), topics)
        .length,
      1,
      "one byte short",
    );
    // An input topic raised past what the processor's own 8 MiB covers needs a larger dead-letter topic.
    assert.match(
      topicSettingProblems(settings(String(10 * 1024 * 1024), "8388608", "compact"), topics)[0]!,
      /needs 14046552: raise it .*max\.message\.bytes=14046552\)$/,
    );
  });

  it("a letter of n bytes of input is its base64 and the envelope's room", () => {
    assert.equal(letterBytesFor(3), 4 + 65_536);
    assert.equal(letterBytesFor(4), 8 + 65_536);
    assert.equal(letterBytesFor(0), 65_536);
  });

  it("settings the brokers did not give are not guessed at", () => {
    assert.deepEqual(topicSettingProblems(new Map(), topics), []);
  });

  it("an input topic kept shorter than the accepted lateness, or dead letters kept finitely: a warning each, with the fix", () => {
    const day = 86_400_000;
    const kept = (input: string, letters: string): TopicSettings =>
      new Map([
        ["in", new Map([["retention.ms", input]])],
        ["dlq", new Map([["retention.ms", letters]])],
      ]);
    assert.deepEqual(topicSettingWarnings(kept("-1", "-1"), topics, 35 * day), []);
    assert.deepEqual(
      topicSettingWarnings(kept(String(35 * day), "-1"), topics, 35 * day),
      [],
      "exactly the lateness",
    );
    const warnings = topicSettingWarnings(kept(String(7 * day), String(7 * day)), topics, 35 * day);
    assert.equal(warnings.length, 2);
    assert.match(
      warnings[0]!,
      /^topic in: retention\.ms is 604800000, shorter than the 3024000000 ms .*--add-config retention\.ms=-1$/,
    );
    assert.match(
      warnings[1]!,
      /^topic dlq: retention\.ms is 604800000: a dead letter deleted .*--entity-name dlq --add-config retention\.ms=-1$/,
    );
    assert.equal(
      topicSettingWarnings(kept(String(35 * day - 1), "-1"), topics, 35 * day).length,
      1,
      "a millisecond short",
    );
    assert.deepEqual(topicSettingWarnings(new Map(), topics, 35 * day), [], "not given, not guessed");
  });

  it("an input or dead-letter topic that is compacted is refused, with the fix; delete alone passes", () => {
    const policies = (input: string, letters: string): TopicSettings =>
      new Map([
        ["in", new Map([["cleanup.policy", input]])],
        ["dlq", new Map([["cleanup.policy", letters]])],
      ]);
    assert.deepEqual(topicSettingProblems(policies("delete", "delete"), topics), []);
    const problems = topicSettingProblems(policies("compact", "compact,delete"), topics);
    assert.equal(problems.length, 2);
    assert.match(
      problems[0]!,
      /^topic in: cleanup\.policy is compact, .*earlier usage records would be deleted unbilled: .*--entity-name in --add-config cleanup\.policy=delete$/,
    );
    assert.match(
      problems[1]!,
      /^topic dlq: cleanup\.policy is compact,delete, .*earlier dead letters .*cleanup\.policy=delete$/,
    );
  });

  it("a finite retention.bytes on the input or dead-letter topic: a warning each, with the fix", () => {
    const bytes = (input: string, letters: string): TopicSettings =>
      new Map([
        ["in", new Map([["retention.bytes", input]])],
        ["dlq", new Map([["retention.bytes", letters]])],
      ]);
    assert.deepEqual(topicSettingWarnings(bytes("-1", "-1"), topics, 1000), []);
    const warnings = topicSettingWarnings(bytes("1000", "0"), topics, 1000);
    assert.equal(warnings.length, 2);
    assert.match(warnings[0]!, /^topic in: retention\.bytes is 1000: .*--add-config retention\.bytes=-1$/);
    assert.match(warnings[1]!, /^topic dlq: retention\.bytes is 0: /);
  });
});
