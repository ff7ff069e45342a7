import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { byTopic, GroupedSends, type TopicMessages, TopicSends } from "../../sinks/kafka/grouped-sends.ts";

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
    const sends = new TopicSends(send);
    const done = sends.submit([out("state", "a")]);
    assert.deepEqual(values(sent[0]), ["state:a"]);
    finish[0]!();
    await done;
  });

  it("given a send in flight, then what is submitted meanwhile goes out as one send, by topic, in order", async () => {
    const { sent, finish, send } = heldSends();
    const sends = new TopicSends(send);
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
    const sends = new TopicSends(send);
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

  it("given poison, then after a failed send nothing more is sent: later submissions fail with its error", async () => {
    const { sent, finish, send } = heldSends();
    const sends = new GroupedSends<TopicMessages[]>(send, { merge: (all) => all.flat(), poison: true });
    const first = sends.submit([out("state", "a")]);
    const waiting = sends.submit([out("state", "b")]);
    finish[0]!(new Error("broker gone"));
    await assert.rejects(first, /broker gone/);
    await assert.rejects(waiting, /broker gone/);
    await assert.rejects(sends.submit([out("state", "c")]), /broker gone/);
    assert.equal(sent.length, 1);
  });

  it("given close, then nothing more is sent, and it resolves once the send in flight has settled", async () => {
    const { sent, finish, send } = heldSends();
    const closed = new Error("closed");
    const sends = new GroupedSends<TopicMessages[]>(send, {
      merge: (all) => all.flat(),
      closedError: () => closed,
    });
    const inFlight = sends.submit([out("state", "a")]);
    const waiting = sends.submit([out("state", "b")]);
    let done = false;
    const closing = sends.close().then(() => {
      done = true;
    });
    await settle();
    assert.equal(done, false, "close waits for the send in flight");
    finish[0]!();
    await inFlight;
    await closing;
    await assert.rejects(waiting, closed);
    await assert.rejects(sends.submit([out("state", "c")]), closed);
    assert.equal(sent.length, 1);
  });

  it("merges entries of one topic into one, keeping their order", () => {
    assert.deepEqual(values(byTopic([out("a", "1"), out("b", "2"), out("a", "3", "4")])), ["a:1,3,4", "b:2"]);
  });
});
