import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SIGNATURE_HEADER, signRecord } from "../../pipeline/auth/signature.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import { clickHouseFor, mongoLayoutFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import {
  accountKeyOf,
  type DeadLetter,
  deadLetterSchema,
  type InputRecordJson,
} from "../../schemas/index.ts";
import { Agentmeter } from "../../sdk/index.ts";
import type { RecordInput } from "../../sdk/validate.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { COLLECTIONS } from "../../sinks/mongo/layout.ts";
import { TestPipeline } from "../support/harness.ts";
import { produceWithLibrdkafka } from "../support/librdkafka.ts";
import { describeDifference } from "../support/verify.ts";

/**
 * Regression tests for the holes an attack on the pipeline found (issue 19): each fails on the code
 * before the fix. Given / When / Then in each test's name.
 */
async function readDeadLetters(pipeline: TestPipeline, atLeast: number): Promise<DeadLetter[]> {
  const { config } = pipeline;
  const consumer = pipeline.kafka().consumer({ groupId: `${config.AGENTMETER_GROUP_ID}-dlq-${Date.now()}` });
  const letters: DeadLetter[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic: config.AGENTMETER_DLQ_TOPIC, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message }) => {
      letters.push(deadLetterSchema.parse(JSON.parse(message.value!.toString("utf8"))));
    },
  });
  const deadline = Date.now() + 60_000;
  while (letters.length < atLeast && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
  await new Promise((r) => setTimeout(r, 500));
  await consumer.disconnect();
  return letters;
}

/** A pipeline for one test, closed when the test is done whatever happens. */
async function withPipeline(
  env: Record<string, string>,
  body: (pipeline: TestPipeline) => Promise<void>,
): Promise<void> {
  const pipeline = await TestPipeline.create({ env });
  try {
    await body(pipeline);
  } finally {
    await pipeline.close();
  }
}

function codes(letters: readonly DeadLetter[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const letter of letters) counts[letter.reason_code] = (counts[letter.reason_code] ?? 0) + 1;
  return counts;
}

describe("partitions: records are never skipped for sitting on another partition", {
  timeout: 6 * 60_000,
}, () => {
  it("given a librdkafka producer with its default partitioner beside the SDK's murmur2, then every record is billed or dead-lettered as RECORD_WRONG_PARTITION, none skipped", async () => {
    const records = [...generateWorkload({ seed: 31, records: 600, apps: 3, usersPerApp: 10, runId: "rdk" })];
    // The same accounts from two producers, one after the other: librdkafka's (crc32) first, then the SDK's.
    const split = 300;
    await withPipeline({}, async (pipeline) => {
      const { config } = pipeline;
      const processor = await pipeline.startProcessor();
      const placed = produceWithLibrdkafka(
        config.KAFKA_BROKERS,
        config.AGENTMETER_INPUT_TOPIC,
        records
          .slice(0, split)
          .map((record) => ({ key: accountKeyOf(record), value: JSON.stringify(record) })),
      );
      const meter = await Agentmeter.connect({ config, billing: pipeline.billing });
      try {
        for (const record of records.slice(split)) await meter.send(record as RecordInput);
        await meter.flush();
      } finally {
        await meter.close();
      }
      await pipeline.caughtUp();
      const right = placed.map(
        (place) => place.partition === partitionForKey(place.key, config.AGENTMETER_PARTITIONS),
      );
      const wrong = right.filter((ok) => !ok).length;
      assert.ok(wrong > 0, "librdkafka's crc32 puts some keys elsewhere than murmur2 (the attack's premise)");
      // Then nothing vanished: consumed = applied + dead-lettered, and the wrong ones are named as such
      assert.equal(processor.totals.consumed, records.length);
      assert.equal(processor.totals.applied + processor.totals.deadLettered, records.length);
      const letters = await readDeadLetters(pipeline, wrong);
      assert.equal(codes(letters).RECORD_WRONG_PARTITION, wrong);
      assert.equal(letters.length, wrong, "only the misplaced records are dead-lettered");
      // And every record on its key's partition is billed, in the order it sits there: an account whose
      // librdkafka records went elsewhere is billed for the SDK's records alone (a key's records all land on
      // one partition under crc32, so no account loses part of its librdkafka records).
      // (Delivery reports come back per partition, not in send order: placement is judged per key.)
      const misplaced = new Set(placed.filter((_, index) => right[index] !== true).map((place) => place.key));
      const kept = records.filter((record, index) => index >= split || !misplaced.has(accountKeyOf(record)));
      await pipeline.assertStoresMatch(kept);
    });
  });

  it("given an account billed on partition P, when the topic gains partitions and its next records land elsewhere, then they are billed exactly once", async () => {
    const all = [...generateWorkload({ seed: 37, records: 900, apps: 3, usersPerApp: 8, runId: "grow" })];
    const first = all.slice(0, 300);
    // Accounts whose key keeps its partition get records produced before the increase but consumed
    // after (valid on their old partition); the others get theirs after it, on their new partition.
    const stays = (record: InputRecordJson) =>
      partitionForKey(accountKeyOf(record), 4) === partitionForKey(accountKeyOf(record), 2);
    const late = all.slice(300, 450).filter(stays);
    const moved = all.slice(450).filter((record) => !stays(record));
    await withPipeline({ AGENTMETER_PARTITIONS: "2" }, async (pipeline) => {
      await pipeline.withProcessor(async () => {
        await pipeline.produce(first);
        await pipeline.caughtUp();
      });
      await pipeline.produce(late);
      await (await pipeline.admin()).createPartitions({
        topicPartitions: [{ topic: pipeline.topic, count: 4 }],
      });
      // A producer that learns the new partition count from the start.
      await pipeline.releaseClients();
      await pipeline.produce(moved);
      assert.ok(late.length > 0 && moved.length > 0, "some accounts stay, some move to a new partition");
      await pipeline.withProcessor(async (processor) => {
        await pipeline.caughtUp();
        assert.equal(processor.totals.deadLettered, 0);
      });
      await pipeline.assertStoresMatch([...first, ...late, ...moved]);
    });
  });

  it("given a topic billed up to some offset, when it is deleted and re-created and new records arrive at low offsets, then they are billed, not taken for replays", async () => {
    const all = [...generateWorkload({ seed: 41, records: 700, apps: 2, usersPerApp: 6, runId: "recreate" })];
    const before = all.slice(0, 600);
    const after = all.slice(600);
    await withPipeline({ AGENTMETER_PARTITIONS: "2" }, async (pipeline) => {
      await pipeline.withProcessor(async () => {
        await pipeline.produce(before);
        await pipeline.caughtUp();
      });
      const admin = await pipeline.admin();
      await admin.deleteTopics({ topics: [pipeline.topic] });
      for (let i = 0; i < 50 && (await admin.listTopics()).includes(pipeline.topic); i++)
        await new Promise((r) => setTimeout(r, 200));
      await admin.createTopics({
        topics: [{ topic: pipeline.topic, numPartitions: 2 }],
        waitForLeaders: true,
      });
      // A producer that has never seen the old topic, as the test always had.
      await pipeline.releaseClients();
      await pipeline.produce(after);
      await pipeline.withProcessor(async (processor) => {
        await pipeline.caughtUp();
        assert.equal(processor.totals.applied, after.length, "every record of the new topic applied");
        assert.equal(processor.totals.replayedSkipped, 0);
      });
      await pipeline.assertStoresMatch(all);
    });
  });
});

describe("tenants: identical producer-chosen ids in two apps and two users never overwrite each other", {
  timeout: 3 * 60_000,
}, () => {
  let pipeline: TestPipeline;
  const at = (minute: number) => new Date(Date.now() - 3_600_000 + minute * 60_000).toISOString();
  const tenants = [
    { enterprise_id: "tenant-a", mozaiks_user_id: "creator-a", platform_user_id: "u1" },
    { enterprise_id: "tenant-b", mozaiks_user_id: "creator-b", platform_user_id: "u1" },
    { enterprise_id: "tenant-a", mozaiks_user_id: "creator-a", platform_user_id: "u2" },
  ];
  const records: InputRecordJson[] = tenants.flatMap((tenant, index) => {
    const ids = { level: "app_usage" as const, ...tenant, session_id: "sess-1", chat_id: "chat-1" };
    return [
      {
        type: "usage",
        record_id: "r-1",
        ...ids,
        workflow_type: "chat_interaction",
        workflow_name: "default",
        agent_usage: { CustomerAgent: { prompt_tokens: 100 * (index + 1), completion_tokens: 50 } },
        occurred_at: at(1),
      },
      {
        type: "session",
        record_id: "r-2",
        event: "finalize",
        ...ids,
        workflow_name: "default",
        occurred_at: at(2),
      },
    ] as InputRecordJson[];
  });

  before(async () => {
    pipeline = await TestPipeline.create();
  });

  after(async () => {
    await pipeline?.close();
  });

  it("when both finish a chat `chat-1` of session `sess-1` with record ids r-1 and r-2, then each keeps its own session, chat and summary rows", async () => {
    const { config } = pipeline;
    await pipeline.withProcessor(async () => {
      await pipeline.produce(records);
      await pipeline.caughtUp(60_000);
    });
    await pipeline.assertStoresMatch(records);
    const mongo = createMongo(config.MONGODB_URI);
    const clickhouse = clickHouseFor(config);
    try {
      const layout = mongoLayoutFor(mongo, config);
      const workflow = layout.workflow();
      const chats = await workflow
        .collection(COLLECTIONS.workflow.tokenChats)
        .find({ chat_id: "chat-1" })
        .toArray();
      assert.deepEqual(chats.map((doc) => `${doc.account_key}:${doc.session_summary.total_tokens}`).sort(), [
        "app:tenant-a:u1:150",
        "app:tenant-a:u2:350",
        "app:tenant-b:u1:250",
      ]);
      const sessions = await workflow
        .collection(COLLECTIONS.workflow.tokenSessions)
        .countDocuments({ session_id: "sess-1" });
      assert.equal(sessions, 3);
      const appA = await layout.app("tenant-a").collection(COLLECTIONS.app.sessions).countDocuments({});
      assert.equal(appA, 2, "two end users of one app keep two session documents");
      const result = await clickhouse.query({
        query: `SELECT account_key, total_tokens FROM ${quoteIdent(config.CLICKHOUSE_DATABASE)}.session_summaries FINAL WHERE chat_id = 'chat-1' ORDER BY account_key`,
        format: "JSONEachRow",
      });
      assert.deepEqual(
        (await result.json<{ account_key: string; total_tokens: string }>()).map(
          (row) => `${row.account_key}:${row.total_tokens}`,
        ),
        ["app:tenant-a:u1:150", "app:tenant-a:u2:350", "app:tenant-b:u1:250"],
      );
    } finally {
      await mongo.close();
      await clickhouse.close();
    }
  });
});

describe("stores: valid input and foreign documents never stop a partition", { timeout: 4 * 60_000 }, () => {
  it("given an AppUsers document agentmeter did not write, then its account's records are dead-lettered as DOCUMENT_INVALID and the rest is billed", async () => {
    const records = [
      ...generateWorkload({ seed: 43, records: 300, apps: 2, usersPerApp: 5, runId: "foreign" }),
    ];
    const victim = records.find((record) => record.level === "app_usage")!;
    const victimKey = accountKeyOf(victim);
    await withPipeline({}, async (pipeline) => {
      const mongo = createMongo(pipeline.config.MONGODB_URI);
      await mongoLayoutFor(mongo, pipeline.config)
        .app(victim.enterprise_id)
        .collection(COLLECTIONS.app.users)
        .insertOne({ _id: victim.platform_user_id, name: "legacy user", tokens: "lots" } as never);
      await mongo.close();
      const victims = records.filter((record) => accountKeyOf(record) === victimKey).length;
      await pipeline.withProcessor(async (processor) => {
        await pipeline.produce(records);
        await pipeline.caughtUp();
        assert.equal(processor.totals.deadLettered, victims);
      });
      const letters = await readDeadLetters(pipeline, victims);
      assert.deepEqual(codes(letters), { DOCUMENT_INVALID: victims });
      assert.match(letters[0]!.reason, /AppUsers\//);
    });
  });

  it("given a small budget-state limit, when one account's paused chats would pass it, then only the records that would do so are dead-lettered as RECORD_STORE_REJECTED and the partition moves on", async () => {
    const ids = { level: "app_usage" as const, enterprise_id: "big-app", mozaiks_user_id: "big-creator" };
    const at = (n: number) => new Date(Date.now() - 3_600_000 + n * 1_000).toISOString();
    const usage = (user: string, n: number): InputRecordJson =>
      ({
        type: "usage",
        record_id: `${user}-${n}`,
        ...ids,
        platform_user_id: user,
        workflow_type: "chat_interaction",
        workflow_name: "default",
        session_id: `session-${n}`,
        chat_id: `a-fairly-long-chat-identifier-${n}`,
        agent_usage: { CustomerAgent: { prompt_tokens: 6_000, completion_tokens: 6_000 } },
        occurred_at: at(n),
      }) as InputRecordJson;
    // Each usage past the trial pauses a new chat, and every paused chat is listed in the budget state.
    const hog = Array.from({ length: 80 }, (_, n) => usage("hog", n));
    const bystander = Array.from({ length: 10 }, (_, n) => usage("calm", 100 + n)).slice(0, 1);
    const env = { AGENTMETER_MAX_STATE_MESSAGE_BYTES: "2048", AGENTMETER_PARTITIONS: "1" };
    await withPipeline(env, async (pipeline) => {
      await pipeline.withProcessor(async (processor) => {
        await pipeline.produce([...hog, ...bystander]);
        await pipeline.caughtUp();
        assert.ok(processor.totals.storeRejected > 0, "some records were refused");
        assert.ok(processor.totals.storeRejected < hog.length, "the ones before the limit were billed");
        const letters = await readDeadLetters(pipeline, processor.totals.storeRejected);
        assert.deepEqual(codes(letters), { RECORD_STORE_REJECTED: processor.totals.storeRejected });
      });
      // The hog's figures depend on which records the limit refused: only the bystander is compared.
      const differences = await pipeline.differences(bystander);
      const bystanders = differences.filter((difference) => difference.account_key === "app:big-app:calm");
      assert.deepEqual(bystanders.map(describeDifference), [], "the bystander is billed exactly");
    });
  });
});

describe("who may send what: credit records need the operator's signature", { timeout: 3 * 60_000 }, () => {
  it("given an operator secret, when an agent runtime sends an unsigned top-up and the operator a signed one, then only the signed one is credited", async () => {
    const secret = "operator-secret-for-tests-0123456789abcdef";
    const ids = {
      level: "app_usage" as const,
      enterprise_id: "signed-app",
      mozaiks_user_id: "signed-creator",
      platform_user_id: "buyer",
    };
    const at = new Date(Date.now() - 60_000).toISOString();
    const topUp = (id: string): InputRecordJson =>
      ({
        type: "credit",
        record_id: id,
        kind: "top_up",
        ...ids,
        tokens: 5_000,
        amount_micros: 50_000,
        occurred_at: at,
      }) as InputRecordJson;
    const forged = JSON.stringify(topUp("forged"));
    const tampered = JSON.stringify(topUp("tampered"));
    const genuine = JSON.stringify(topUp("genuine"));
    await withPipeline({ AGENTMETER_OPERATOR_SECRET: secret }, async (pipeline) => {
      await pipeline.withProcessor(async (processor) => {
        const key = accountKeyOf(ids);
        await (await pipeline.producer()).send({
          topic: pipeline.topic,
          acks: -1,
          messages: [
            { key, value: forged },
            // Signed, then changed: the signature covers the exact bytes.
            {
              key,
              value: tampered.replace("5000", "9000"),
              headers: { [SIGNATURE_HEADER]: signRecord(secret, tampered) },
            },
            { key, value: genuine, headers: { [SIGNATURE_HEADER]: signRecord(secret, genuine) } },
          ],
        });
        await pipeline.caughtUp(60_000);
        assert.equal(processor.totals.deadLettered, 2);
      });
      const letters = await readDeadLetters(pipeline, 2);
      assert.deepEqual(codes(letters), { RECORD_UNAUTHORIZED: 2 });
      await pipeline.assertStoresMatch([JSON.parse(genuine)]);
    });
  });
});
