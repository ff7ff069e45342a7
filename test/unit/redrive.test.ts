import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  compareOrder,
  REDRIVEN_FROM_HEADER,
  REDRIVEN_REASON_HEADER,
  type RedriveSelection,
  redriveDecision,
  sendOrderOf,
} from "../../pipeline/ops/redrive.ts";
import { deadLetter } from "../../pipeline/processor/dead-letter.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import type { ErrorCode } from "../../schemas/errors.ts";
import { accountKeyOf, deadLetterSchema, type InputRecordJson, SCHEMA_VERSION } from "../../schemas/index.ts";

const records = [...generateWorkload({ seed: 5, records: 200, apps: 2, usersPerApp: 3, runId: "rd" })];
const usage = records.find((record) => record.type === "usage")!;
const credit = records.find((record) => record.type === "credit")!;
const selection: RedriveSelection = {
  inputTopic: "in",
  reasons: new Set<ErrorCode>(["RECORD_WRONG_PARTITION", "RECORD_KEY_MISMATCH"]),
  rekey: false,
  maxRecordBytes: 65_536,
};
const at = { topic: "dlq", partition: 2, offset: "17" };

function letter(value: string | Buffer, code: ErrorCode, key: string | Buffer | null, topic = "in"): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value) : value;
  const envelope = deadLetter(
    { topic, partition: 0, offset: "5" },
    key === null ? null : Buffer.from(key),
    bytes,
    code,
    "why",
    "2026-12-06T00:00:00.000Z",
  );
  return Buffer.from(JSON.stringify(envelope));
}

describe("redrive: which dead letters go back to the input topic", () => {
  it("sends the original bytes under the original key, with where the letter was and why", () => {
    const bytes = Buffer.from(JSON.stringify(usage));
    const decision = redriveDecision(
      letter(bytes, "RECORD_WRONG_PARTITION", accountKeyOf(usage)),
      at,
      selection,
    );
    assert.ok(decision.send);
    assert.equal(decision.reason, "RECORD_WRONG_PARTITION");
    assert.equal(decision.message.key, accountKeyOf(usage));
    assert.deepEqual(decision.message.value, bytes);
    assert.deepEqual(decision.message.headers, {
      [REDRIVEN_FROM_HEADER]: "dlq/2/17",
      [REDRIVEN_REASON_HEADER]: "RECORD_WRONG_PARTITION",
    });
  });

  it("a key that is not UTF-8 is kept byte for byte and sent back as it came; a text key has no copy", () => {
    const bytes = Buffer.from(JSON.stringify(usage));
    const binaryKey = Buffer.from([0x61, 0xff, 0xfe, 0x00, 0xc3]);
    const envelope = deadLetterSchema.parse(
      JSON.parse(letter(bytes, "RECORD_KEY_MISMATCH", binaryKey).toString()),
    );
    assert.equal(envelope.key, binaryKey.toString("utf8"), "the text form, for reading");
    assert.deepEqual(Buffer.from(envelope.key_base64!, "base64"), binaryKey);
    const decision = redriveDecision(letter(bytes, "RECORD_KEY_MISMATCH", binaryKey), at, selection);
    assert.ok(decision.send);
    assert.deepEqual(decision.message.key, binaryKey);
    const textual = deadLetterSchema.parse(
      JSON.parse(letter(bytes, "RECORD_KEY_MISMATCH", "app_usage:é:ü").toString()),
    );
    assert.equal(textual.key, "app_usage:é:ü");
    assert.equal("key_base64" in textual, false);
  });

  it("a letter names the incarnation its rows are stored under when the topic was created again, and the decision keeps it", () => {
    const bytes = Buffer.from(JSON.stringify(usage));
    const make = (storedAs?: string) =>
      deadLetter(
        { topic: "in", partition: 0, offset: "5" },
        null,
        bytes,
        "RECORD_WRONG_PARTITION",
        "why",
        "2026-12-06T00:00:00.000Z",
        storedAs,
      );
    assert.equal(make().source.stored_as, undefined, "the first incarnation: the topic's own name");
    assert.equal(make("in").source.stored_as, undefined);
    assert.equal(make("in~2").source.stored_as, "in~2");
    for (const [envelope, storedAs] of [
      [make(), undefined],
      [make("in~2"), "in~2"],
    ] as const) {
      const decision = redriveDecision(Buffer.from(JSON.stringify(envelope)), at, selection);
      assert.ok(decision.send);
      assert.equal(decision.source.storedAs, storedAs);
    }
  });

  it("with rekey, keys a record by its account; one that does not decode is skipped", () => {
    const wrongKey = letter(JSON.stringify(usage), "RECORD_KEY_MISMATCH", "app:nobody:nobody");
    const decision = redriveDecision(wrongKey, at, { ...selection, rekey: true });
    assert.ok(decision.send);
    assert.equal(decision.message.key, accountKeyOf(usage));
    const asCame = redriveDecision(wrongKey, at, selection);
    assert.equal(
      asCame.send ? asCame.message.key : undefined,
      "app:nobody:nobody",
      "without rekey: as it came",
    );
    const broken = letter(JSON.stringify({ ...usage, record_id: "" }), "RECORD_KEY_MISMATCH", "k");
    assert.deepEqual(redriveDecision(broken, at, { ...selection, rekey: true }), {
      send: false,
      skip: "no_account_key",
    });
  });

  it("skips other reasons, other topics, credits, ticks and what is not a dead letter", () => {
    const skip = (value: Buffer | null) => {
      const decision = redriveDecision(value, at, selection);
      return decision.send ? "sent" : decision.skip;
    };
    assert.equal(skip(letter("not json", "RECORD_NOT_JSON", null)), "other_reason");
    assert.equal(
      skip(letter(JSON.stringify(usage), "RECORD_WRONG_PARTITION", "k", "elsewhere")),
      "other_topic",
    );
    assert.equal(
      skip(letter(JSON.stringify(credit), "RECORD_WRONG_PARTITION", accountKeyOf(credit))),
      "credit",
    );
    const tick = {
      type: "tick",
      schema_version: SCHEMA_VERSION,
      record_id: "t",
      partition: 0,
      occurred_at: usage.occurred_at,
    };
    assert.equal(skip(letter(JSON.stringify(tick), "RECORD_WRONG_PARTITION", "tick:0")), "tick");
    assert.equal(skip(Buffer.from("{}")), "unreadable_letter");
    assert.equal(skip(null), "unreadable_letter");
  });

  it("sends one account's letters by occurred_at, then by where they sat in the input topic, whatever the letters' order", () => {
    const [first] = records.filter((record) => record.type === "usage").slice(0, 1) as InputRecordJson[];
    const later = {
      ...first!,
      record_id: "later",
      occurred_at: new Date(Date.parse(first!.occurred_at) + 60_000).toISOString(),
    };
    const sameTime = { ...first!, record_id: "same-time" };
    const decide = (record: InputRecordJson, partition: number, offset: string) => {
      const envelope = deadLetter(
        { topic: "in", partition, offset },
        null,
        Buffer.from(JSON.stringify(record)),
        "RECORD_KEY_MISMATCH",
        "why",
        "2026-12-06T00:00:00.000Z",
      );
      const decision = redriveDecision(Buffer.from(JSON.stringify(envelope)), at, {
        ...selection,
        rekey: true,
      });
      assert.ok(decision.send);
      return { id: record.record_id, order: sendOrderOf(decision) };
    };
    // As read: the later one first (another dead-letter partition), then two of one time on two partitions.
    const read = [decide(later, 0, "3"), decide(sameTime, 2, "1"), decide(first!, 1, "9")];
    const sent = [...read].sort((a, b) => compareOrder(a.order, b.order)).map((item) => item.id);
    assert.deepEqual(sent, [first!.record_id, "same-time", "later"]);
  });
});
