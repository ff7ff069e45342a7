/**
 * The services every integration test relies on really work: one round trip through each of Kafka, MongoDB
 * and ClickHouse, wherever getServices() found them. Run: node --import tsx --test test/int/stack.int.test.ts
 */
import assert from "node:assert/strict";
import { before, describe, it } from "node:test";
import { createClient } from "@clickhouse/client";
import kafkajs from "kafkajs";
import { MongoClient } from "mongodb";
import { stackUp } from "../../deploy/local/stack.ts";
import { getServices, type Services, uniqueName } from "../support/services.ts";

describe("services for integration tests", { timeout: 15 * 60_000 }, () => {
  let services: Services;

  before(async () => {
    // A cold machine installs the stack here: minutes, once.
    services = await getServices();
  });

  it("Kafka: a message produced to a new topic is consumed back", { timeout: 60_000 }, async () => {
    const topic = uniqueName("stack_kafka");
    const kafka = new kafkajs.Kafka({
      clientId: "stack-int-test",
      brokers: services.kafkaBrokers,
      // kafkajs logs harmless ERRORs while a new group coordinator loads; the assertions below decide.
      logLevel: kafkajs.logLevel.NOTHING,
    });
    const admin = kafka.admin();
    const producer = kafka.producer({ createPartitioner: kafkajs.Partitioners.DefaultPartitioner });
    const consumer = kafka.consumer({ groupId: uniqueName("stack_group") });
    try {
      await admin.connect();
      assert.equal(
        await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true }),
        true,
      );
      await producer.connect();
      await producer.send({ topic, messages: [{ key: "k1", value: "hello agentmeter" }] });

      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const received = await new Promise<{ key: string; value: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no message on ${topic} within 30s`)), 30_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            clearTimeout(timer);
            resolve({ key: message.key?.toString() ?? "", value: message.value?.toString() ?? "" });
          },
        });
      });
      assert.deepEqual(received, { key: "k1", value: "hello agentmeter" });
    } finally {
      await consumer.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
      await admin.deleteTopics({ topics: [topic] }).catch(() => {});
      await admin.disconnect().catch(() => {});
    }
  });

  it("MongoDB: a document inserted into a new database is found", { timeout: 30_000 }, async () => {
    const dbName = uniqueName("stack_mongo");
    const client = new MongoClient(services.mongoUri, { serverSelectionTimeoutMS: 10_000 });
    try {
      const collection = client.db(dbName).collection<{ _id: string; tokens: number }>("usage");
      await collection.insertOne({ _id: "u1", tokens: 42 });
      const found = await collection.findOne({ _id: "u1" });
      assert.deepEqual(found, { _id: "u1", tokens: 42 });
    } finally {
      await client
        .db(dbName)
        .dropDatabase()
        .catch(() => {});
      await client.close();
    }
  });

  it("ClickHouse: rows inserted into a new database and table are selected back", {
    timeout: 30_000,
  }, async () => {
    const database = uniqueName("stack_ch");
    const client = createClient({
      url: services.clickhouseUrl,
      // Defaults differ between ClickHouse versions; pin what the assertions rely on.
      clickhouse_settings: { output_format_json_quote_64bit_integers: 1 },
    });
    try {
      await client.command({ query: `CREATE DATABASE ${database}` });
      await client.command({
        query: `CREATE TABLE ${database}.usage (id String, tokens UInt64, at DateTime64(3, 'UTC'))
                ENGINE = MergeTree ORDER BY id`,
      });
      await client.insert({
        table: `${database}.usage`,
        values: [
          { id: "a", tokens: 5, at: "2026-01-01 00:00:00.000" },
          { id: "b", tokens: 7, at: "2026-01-01 00:00:01.500" },
        ],
        format: "JSONEachRow",
      });
      const result = await client.query({
        query: `SELECT id, tokens FROM ${database}.usage WHERE tokens > {min:UInt64} ORDER BY id`,
        query_params: { min: 0 },
        format: "JSONEachRow",
      });
      assert.deepEqual(await result.json(), [
        { id: "a", tokens: "5" },
        { id: "b", tokens: "7" },
      ]);
      if (services.source === "local") {
        const version = await (
          await client.query({ query: "SELECT version() AS v", format: "JSONEachRow" })
        ).json<{
          v: string;
        }>();
        assert.match(version[0]?.v ?? "", /^26\./, "the local stack runs ClickHouse 26.x");
      }
    } finally {
      await client.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => {});
      await client.close();
    }
  });

  it("local stack: stackUp() on a running stack is a no-op with the same endpoints", {
    timeout: 60_000,
  }, async (t) => {
    if (services.source !== "local") {
      t.skip(`services come from ${services.source}, not the local stack`);
      return;
    }
    const lines: string[] = [];
    const started = Date.now();
    const endpoints = await stackUp({ log: (line) => lines.push(line) });
    assert.deepEqual(
      {
        kafkaBrokers: endpoints.kafkaBrokers,
        mongoUri: endpoints.mongoUri,
        clickhouseUrl: endpoints.clickhouseUrl,
      },
      {
        kafkaBrokers: services.kafkaBrokers,
        mongoUri: services.mongoUri,
        clickhouseUrl: services.clickhouseUrl,
      },
    );
    assert.deepEqual(
      lines.filter((line) => /installing|ready in|starting/.test(line)),
      [],
      "nothing installed or started",
    );
    assert.ok(Date.now() - started < 15_000, "a no-op up is quick");
  });
});
