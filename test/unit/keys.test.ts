import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  type AccountKey,
  accountKeyOf,
  chatKeyOf,
  isAgentmeterError,
  namespaceKeyOf,
  parseAccountKey,
  parseChatKey,
  parseNamespaceKey,
  parseTopicPartitionKey,
  parseWorkflowKey,
  topicPartitionKeyOf,
  workflowKeyOf,
} from "../../schemas/index.ts";

function refused(run: () => unknown): void {
  assert.throws(run, (error: unknown) => isAgentmeterError(error, "KEY_INVALID"));
}

describe("account key", () => {
  test("Given app and platform ids, When built and parsed, Then the parts come back", () => {
    const app = accountKeyOf({
      level: "app_usage",
      enterprise_id: "app_1",
      mozaiks_user_id: "creator",
      platform_user_id: "User-9",
    });
    assert.equal(app, "app:app_1:User-9");
    assert.deepEqual(parseAccountKey(app), {
      level: "app_usage",
      enterprise_id: "app_1",
      platform_user_id: "User-9",
    });
    const platform = accountKeyOf({ level: "platform", enterprise_id: "app_1", mozaiks_user_id: "creator" });
    assert.equal(platform, "platform:creator");
    assert.deepEqual(parseAccountKey(platform), { level: "platform", mozaiks_user_id: "creator" });
    assert.equal(accountKeyOf(parseAccountKey(app)), app);
    assert.equal(accountKeyOf(parseAccountKey(platform)), platform);
  });

  test("Given an id holding the separator `:`, When built, Then refused (the key could not be parsed back)", () => {
    refused(() => accountKeyOf({ level: "platform", mozaiks_user_id: "a:b" }));
    refused(() =>
      accountKeyOf({
        level: "app_usage",
        enterprise_id: "app",
        mozaiks_user_id: "c",
        platform_user_id: "u:1",
      }),
    );
    refused(() =>
      accountKeyOf({ level: "app_usage", enterprise_id: "a:p", mozaiks_user_id: "c", platform_user_id: "u" }),
    );
  });

  test("Given malformed text, When parsed, Then KEY_INVALID", () => {
    for (const bad of [
      "",
      "platform",
      "platform:",
      "platform:a:b",
      "app:app_1",
      "app:app_1:",
      "app:App_1:user",
      "app:app_1:user:extra",
      "user:app_1:user",
      "platform:__proto__",
      "platform:a b",
    ]) {
      refused(() => parseAccountKey(bad));
    }
  });
});

describe("chat key", () => {
  const account = accountKeyOf({
    level: "app_usage",
    enterprise_id: "app_1",
    mozaiks_user_id: "c",
    platform_user_id: "u",
  });

  test("Given a chat id holding `:` (producers namespace them), When built and parsed, Then it comes back whole", () => {
    const key = chatKeyOf(account, "producer-a:chat:42");
    assert.equal(key, "app:app_1:u/producer-a:chat:42");
    assert.deepEqual(parseChatKey(key), { accountKey: account, chatId: "producer-a:chat:42" });
  });

  test("Given a chat id holding `/` or malformed text, Then KEY_INVALID", () => {
    refused(() => chatKeyOf(account, "a/b"));
    for (const bad of [
      "app:app_1:u",
      "app:app_1:u/",
      "app:app_1:u/a/b",
      "nope/chat",
      "/chat",
      "app:app_1:u/a b",
    ]) {
      refused(() => parseChatKey(bad));
    }
  });

  test("Given keys of other kinds, Then the type checker keeps them apart", () => {
    // @ts-expect-error a chat key is not an account key
    const wrong: AccountKey = chatKeyOf(account, "c1");
    assert.equal(typeof wrong, "string");
  });
});

describe("workflow key", () => {
  test("Given an app and a workflow, When built and parsed, Then they come back", () => {
    const key = workflowKeyOf("app_1", "Support");
    assert.equal(key, "app_1:Support");
    assert.deepEqual(parseWorkflowKey(key), { enterpriseId: "app_1", workflowName: "Support" });
  });

  test("Given `:` in a part or malformed text, Then KEY_INVALID", () => {
    refused(() => workflowKeyOf("app:1", "Support"));
    refused(() => workflowKeyOf("app_1", "Sup:port"));
    for (const bad of ["app_1", "app_1:", ":Support", "app_1:a:b", "App_1:Support"])
      refused(() => parseWorkflowKey(bad));
  });
});

describe("topic partition key", () => {
  test("Given a topic with dots and a re-creation suffix, When built and parsed, Then they come back", () => {
    const key = topicPartitionKeyOf("agentmeter.input~2", 11);
    assert.equal(key, "agentmeter.input~2:11");
    assert.deepEqual(parseTopicPartitionKey(key), { topic: "agentmeter.input~2", partition: 11 });
  });

  test("Given `:` in the topic, a bad partition or malformed text, Then KEY_INVALID", () => {
    refused(() => topicPartitionKeyOf("a:b", 0));
    refused(() => topicPartitionKeyOf("topic", -1));
    refused(() => topicPartitionKeyOf("topic", 1.5));
    for (const bad of ["topic", "topic:", ":0", "topic:-1", "topic:01", "topic:1x", "to pic:1", "a:b:1"]) {
      refused(() => parseTopicPartitionKey(bad));
    }
  });
});

describe("namespace key", () => {
  test("Given a collection name holding dots, When built and parsed, Then the first dot ends the database", () => {
    const key = namespaceKeyOf({ dbName: "MozaiksApp_app_1", collectionName: "chat.sessions" });
    assert.equal(key, "MozaiksApp_app_1.chat.sessions");
    assert.deepEqual(parseNamespaceKey(key), { dbName: "MozaiksApp_app_1", collectionName: "chat.sessions" });
  });

  test("Given a database name holding `.` or malformed text, Then KEY_INVALID", () => {
    refused(() => namespaceKeyOf({ dbName: "a.b", collectionName: "c" }));
    for (const bad of ["db", ".c", "db."]) refused(() => parseNamespaceKey(bad));
  });
});
