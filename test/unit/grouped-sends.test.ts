import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { byTopic, GroupedSends, type TopicMessages } from "../../sinks/kafka/grouped-sends.ts";

/** A send the test finishes by hand, to hold one in flight. */
function heldSends() {
  const sent: TopicMessages[][] = [];
  const finish: ((error?: Error) => void)[] = [];
  const send = (topicMessages: TopicMessages[]) => {
    sent.push(topicMessages);
    return new Promise<void>((resolve, reject) =>
      finish.push((error) => (error === undefined ? resolve() : reject(error))),
    );
  };
  return { sent, finish, send };
}

const out = (topic: string, ...values: string[]): TopicMessages => ({
  topic,
  messages: values.map((value) => ({ key: value, value })),
});
const values = (topicMessages: TopicMessages[] | undefined) =>
  (topicMessages ?? []).map(({ topic, messages }) => `${topic}:${messages.map((m) => m.value).join(",")}`);
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("grouped sends: one in flight, the rest go together next", () => {
  it("given nothing in flight, then a submission is sent at once", async () => {
    const { sent, finish, send } = heldSends();
    const sends = new GroupedSends(send);
    const done = sends.submit([out("state", "a")]);
    assert.deepEqual(values(sent[0]), ["state:a"]);
    finish[0]!();
    await done;
  });

  it("given a send in flight, then what is submitted meanwhile goes out as one send, by topic, in order", async () => {
    const { sent, finish, send } = heldSends();
    const sends = new GroupedSends(send);
    const first = sends.submit([out("state", "a")]);
    const later = [
      sends.submit([out("state", "b"), out("holds", "h1")]),
      sends.submit([out("events", "e1")]),
      sends.submit([out("holds", "h2"), out("state", "c")]),
    ];
    assert.equal(sent.length, 1, "the others wait for the send in flight");
    finish[0]!();
    await first;
    await settle();
    assert.equal(sent.length, 2);
    assert.deepEqual(values(sent[1]), ["state:b,c", "holds:h1,h2", "events:e1"]);
    finish[1]!();
    await Promise.all(later);
  });

  it("given a failed send, then every submission in it fails and the next group is still sent", async () => {
    const { sent, finish, send } = heldSends();
    const sends = new GroupedSends(send);
    const first = sends.submit([out("state", "a")]);
    const grouped = [sends.submit([out("state", "b")]), sends.submit([out("state", "c")])];
    finish[0]!();
    await first;
    await settle();
    const after = sends.submit([out("state", "d")]);
    finish[1]!(new Error("broker gone"));
    for (const submission of grouped) await assert.rejects(submission, /broker gone/);
    await settle();
    assert.deepEqual(values(sent[2]), ["state:d"]);
    finish[2]!();
    await after;
  });

  it("merges entries of one topic into one, keeping their order", () => {
    assert.deepEqual(values(byTopic([out("a", "1"), out("b", "2"), out("a", "3", "4")])), ["a:1,3,4", "b:2"]);
  });
});
