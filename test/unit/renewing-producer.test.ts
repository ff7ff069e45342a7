import assert from "node:assert/strict";
import { describe, it } from "node:test";
import kafkajs, { type Producer, type ProducerRecord } from "kafkajs";
import { lostProducerState, RenewingProducer } from "../../pipeline/renewing-producer.ts";

/**
 * The renewal logic alone, over stand-in producers (the broker's side of it is the cluster test's
 * broker SIGKILL): which answers renew, that the failing send still fails, and that the next send goes
 * out on a new, connected producer while the old one is closed.
 */
function protocolError(type: string): Error {
  // kafkajs is CommonJS: its error classes are reached through the default export under ESM.
  const error = new kafkajs.KafkaJSProtocolError(`broker says ${type}`);
  Object.assign(error, { type });
  return error;
}

class StandIn {
  connects = 0;
  disconnects = 0;
  sent: ProducerRecord[] = [];
  failWith: Error | undefined;
  async connect() {
    this.connects++;
  }
  async disconnect() {
    this.disconnects++;
  }
  async send(record: ProducerRecord) {
    if (this.failWith !== undefined) throw this.failWith;
    this.sent.push(record);
    return [];
  }
}

function renewing() {
  const made: StandIn[] = [];
  const renewals: unknown[] = [];
  const producer = new RenewingProducer(
    () => {
      const standIn = new StandIn();
      made.push(standIn);
      return standIn as unknown as Producer;
    },
    (error) => renewals.push(error),
  );
  return { producer, made, renewals };
}

const record = (n: number): ProducerRecord => ({ topic: "t", messages: [{ value: String(n) }] });

describe("RenewingProducer", () => {
  it("given the broker lost the producer's sequence state, then that send fails and the next goes out on a new producer", async () => {
    const { producer, made, renewals } = renewing();
    await producer.connect();
    await producer.send(record(1));
    made[0]!.failWith = protocolError("OUT_OF_ORDER_SEQUENCE_NUMBER");
    await assert.rejects(producer.send(record(2)), /OUT_OF_ORDER_SEQUENCE_NUMBER/);
    assert.equal(made.length, 2, "a new producer (a new producer id) replaces the stuck one");
    assert.equal(renewals.length, 1);
    await producer.send(record(2));
    assert.equal(made[1]!.connects, 1, "the new producer is connected before it sends");
    assert.deepEqual(
      made[1]!.sent.map((r) => r.messages[0]!.value),
      ["2"],
    );
    assert.equal(made[0]!.disconnects, 1, "the stuck producer is closed");
  });

  it("given UNKNOWN_PRODUCER_ID wrapped in a retry error, then it renews too", async () => {
    const { producer, made } = renewing();
    await producer.connect();
    const wrapped = new Error("retries exhausted", { cause: protocolError("UNKNOWN_PRODUCER_ID") });
    made[0]!.failWith = wrapped;
    await assert.rejects(producer.send(record(1)));
    assert.equal(made.length, 2);
    assert.equal(lostProducerState(wrapped), true);
  });

  it("given an ordinary failure (a leader moving, a timeout), then the same producer is kept", async () => {
    const { producer, made } = renewing();
    await producer.connect();
    made[0]!.failWith = protocolError("NOT_LEADER_FOR_PARTITION");
    await assert.rejects(producer.send(record(1)));
    made[0]!.failWith = new Error("Request timed out");
    await assert.rejects(producer.send(record(1)));
    assert.equal(made.length, 1, "kafkajs retries those itself: no renewal");
  });

  it("given the new producer cannot connect yet, then sends fail until it can, and no third producer is made", async () => {
    const { producer, made } = renewing();
    await producer.connect();
    made[0]!.failWith = protocolError("OUT_OF_ORDER_SEQUENCE_NUMBER");
    await assert.rejects(producer.send(record(1)));
    const second = made[1]!;
    let down = true;
    second.connect = async () => {
      second.connects++;
      if (down) throw new Error("broker unreachable");
    };
    await assert.rejects(producer.send(record(1)), /unreachable/);
    down = false;
    await producer.send(record(1));
    assert.equal(made.length, 2);
    assert.equal(second.connects, 2);
    assert.equal(second.sent.length, 1);
  });

  it("given another send still in flight on the replaced producer, then it is closed only once that send settles, and closing the wrapper closes it at the latest", async () => {
    const { producer, made } = renewing();
    await producer.connect();
    const first = made[0]!;
    let release: () => void = () => undefined;
    first.send = (record: ProducerRecord) =>
      record.messages[0]!.value === "slow"
        ? new Promise((resolve) => {
            release = () => resolve([]);
          })
        : Promise.reject(protocolError("OUT_OF_ORDER_SEQUENCE_NUMBER"));
    const slow = producer.send({ topic: "t", messages: [{ value: "slow" }] });
    await assert.rejects(producer.send(record(1)));
    assert.equal(made.length, 2, "renewed");
    assert.equal(first.disconnects, 0, "not closed under a send still retrying (kafkajs would reconnect it)");
    release();
    await slow;
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(first.disconnects, 1, "closed once its last send settled");
    await producer.disconnect();
    assert.equal(made[1]!.disconnects, 1);
  });
});
