import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Processor } from "../../pipeline/processor/processor.ts";
import { generateWorkload, prng } from "../../pipeline/simulate/workload.ts";
import { accountKeyOf, deadLetterSchema, type InputRecordJson } from "../../schemas/index.ts";
import { TestPipeline } from "../support/harness.ts";

type Bad = { key: string | null; value: Buffer | null; expect: string };

/** Hostile and broken inputs of every kind the processor must dead-letter, each with the code it must get. */
function badRecords(valid: readonly InputRecordJson[], count: number): Bad[] {
  const random = prng(99);
  const usage = valid.find((record) => record.type === "usage")!;
  const hostileIds = [
    "../etc",
    "$where",
    "a.b",
    "with space",
    "nul\u0000id",
    "x".repeat(49),
    "UPPER",
    "a/b",
    "a\\b",
    "",
  ];
  const kinds: ((i: number) => Bad)[] = [
    () => ({
      key: "junk",
      value: Buffer.from(Array.from({ length: 40 }, () => Math.floor(random() * 256))),
      expect: "RECORD_NOT_JSON",
    }),
    () => ({ key: "junk", value: Buffer.from("{not json"), expect: "RECORD_NOT_JSON" }),
    () => ({ key: "junk", value: null, expect: "RECORD_NOT_JSON" }),
    (i) => ({
      key: accountKeyOf(usage),
      value: Buffer.from(JSON.stringify({ ...usage, record_id: `big-${i}`, pad: "x".repeat(70_000) })),
      expect: "RECORD_TOO_LARGE",
    }),
    (i) => ({
      key: accountKeyOf(usage),
      value: Buffer.from(
        JSON.stringify({
          ...usage,
          record_id: `typed-${i}`,
          agent_usage: { A: { prompt_tokens: "12", completion_tokens: -1 } },
        }),
      ),
      expect: "RECORD_INVALID",
    }),
    (i) => ({
      key: accountKeyOf(usage),
      value: Buffer.from(JSON.stringify({ ...usage, record_id: `cost-${i}`, cost: 0.45 })),
      expect: "RECORD_INVALID",
    }),
    (i) => {
      const id = hostileIds[i % hostileIds.length]!;
      return {
        key: "hostile",
        value: Buffer.from(JSON.stringify({ ...usage, record_id: `host-${i}`, enterprise_id: id })),
        expect: "RECORD_INVALID",
      };
    },
    (i) => ({
      key: "app:someone:else",
      value: Buffer.from(JSON.stringify({ ...usage, record_id: `key-${i}` })),
      expect: "RECORD_KEY_MISMATCH",
    }),
    (i) => ({
      key: accountKeyOf(usage),
      value: Buffer.from(JSON.stringify({ ...usage, record_id: `model-${i}`, model: "no-such-model" })),
      expect: "UNKNOWN_MODEL",
    }),
    // Event time far from the log's: one record dated 9999 would otherwise make every later one too late.
    (i) => ({
      key: accountKeyOf(usage),
      value: Buffer.from(
        JSON.stringify({ ...usage, record_id: `future-${i}`, occurred_at: "9999-12-31T00:00:00Z" }),
      ),
      expect: "RECORD_TIME_SKEW",
    }),
    (i) => ({
      key: accountKeyOf(usage),
      value: Buffer.from(
        JSON.stringify({ ...usage, record_id: `past-${i}`, occurred_at: "1971-01-01T00:00:00Z" }),
      ),
      expect: "RECORD_TIME_SKEW",
    }),
  ];
  return Array.from({ length: count }, (_, i) => kinds[i % kinds.length]!(i));
}

describe("bad input: every malformed, oversized, wrong-typed or hostile record is dead-lettered with its reason", {
  timeout: 5 * 60_000,
}, () => {
  const valid = [...generateWorkload({ seed: 3, records: 2_000, apps: 3, usersPerApp: 10, runId: "bad" })];
  const bad = badRecords(valid, 3_000);
  let pipeline: TestPipeline;
  let processor: Processor;

  before(async () => {
    // The counts below are of the records this test sends (ticks are off in tests: support/pipeline.ts).
    pipeline = await TestPipeline.create();
    processor = await pipeline.startProcessor();
    // Given valid and bad records interleaved on the input topic
    const producer = await pipeline.producer();
    // Valid records keep their order (per account order matters); bad ones are woven in between.
    const interleaved: { key: string | null; value: Buffer | null }[] = [];
    const ratio = Math.ceil(bad.length / valid.length);
    valid.forEach((record, index) => {
      interleaved.push({ key: accountKeyOf(record), value: Buffer.from(JSON.stringify(record)) });
      for (const item of bad.slice(index * ratio, (index + 1) * ratio))
        interleaved.push({ key: item.key, value: item.value });
    });
    // Sends stay under the broker's 1 MiB request limit (the oversized records are 70 KB each).
    for (let start = 0; start < interleaved.length; start += 10) {
      await producer.send({
        topic: pipeline.topic,
        acks: -1,
        messages: interleaved.slice(start, start + 10),
      });
    }
    await pipeline.caughtUp();
  });

  after(async () => {
    await pipeline?.close();
  });

  it("then consumed = processed + dead-lettered, and the valid records are billed exactly", async () => {
    assert.equal(processor.totals.consumed, valid.length + bad.length);
    assert.equal(processor.totals.deadLettered, bad.length);
    // A record the billing rules refuse (an unknown model, an event time far from the log's) went
    // through the core but is counted once, as dead-lettered: the counters add up record by record.
    assert.equal(processor.totals.applied, valid.length, "applied counts the valid records alone");
    assert.equal(
      processor.totals.applied + processor.totals.replayedSkipped + processor.totals.deadLettered,
      processor.totals.consumed,
    );
    await pipeline.assertStoresMatch(valid);
  });

  it("then each dead letter carries its reason code, a reason and the original bytes", async () => {
    const { config } = pipeline;
    const consumer = pipeline.kafka().consumer({ groupId: `${config.AGENTMETER_GROUP_ID}-dlq-reader` });
    const letters: ReturnType<typeof deadLetterSchema.parse>[] = [];
    await consumer.connect();
    await consumer.subscribe({ topic: config.AGENTMETER_DLQ_TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        letters.push(deadLetterSchema.parse(JSON.parse(message.value!.toString("utf8"))));
      },
    });
    const deadline = Date.now() + 60_000;
    while (letters.length < bad.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await consumer.disconnect();
    assert.equal(letters.length, bad.length);
    const wanted = new Map<string, number>();
    for (const item of bad) wanted.set(item.expect, (wanted.get(item.expect) ?? 0) + 1);
    const got = new Map<string, number>();
    for (const letter of letters) got.set(letter.reason_code, (got.get(letter.reason_code) ?? 0) + 1);
    assert.deepEqual(Object.fromEntries([...got].sort()), Object.fromEntries([...wanted].sort()));
    const originals = new Set(bad.map((item) => (item.value ?? Buffer.alloc(0)).toString("base64")));
    for (const letter of letters) {
      assert.ok(letter.reason.length > 0);
      assert.ok(originals.has(letter.original), "the original bytes are kept byte for byte");
    }
  });
});
