import { AgentmeterError } from "./errors.ts";
import { ENTERPRISE_ID_PATTERN, NAME_PATTERN, OPAQUE_ID_PATTERN, USER_ID_PATTERN } from "./ids.ts";

/**
 * The keys agentmeter joins from ids, each with one builder and one parser.
 *
 * Keys are branded strings rather than small objects: they are Map keys, Kafka message keys, MongoDB
 * `_id`s and log text, all of which want a string, and a brand costs nothing at run time. The brand
 * is what the type checker sees: a chat key cannot be passed where an account key is expected, and a
 * string becomes a key only through a builder here (or a parser, which checks it).
 *
 * Builders trust that the ids they join passed the id rules (ids.ts), as every validated record's
 * do, but refuse an id holding the key's separator, since that key could not be parsed back.
 * Parsers check the whole form and throw AgentmeterError KEY_INVALID on anything else.
 */
declare const keyKind: unique symbol;
type Key<Kind extends string> = string & { readonly [keyKind]: Kind };

/** `platform:{mozaiks_user_id}` or `app:{enterprise_id}:{platform_user_id}`. */
export type AccountKey = Key<"account">;
/** An account key and a chat id: `{account key}/{chat_id}`. */
export type ChatKey = Key<"chat">;
/** `{enterprise_id}:{workflow_name}`. */
export type WorkflowKey = Key<"workflow">;
/** A partition's position in the cluster: `{topic}:{partition}`. */
export type TopicPartitionKey = Key<"topic-partition">;
/** A MongoDB collection's full name: `{database}.{collection}`. */
export type NamespaceKey = Key<"namespace">;
/** The Kafka key of a tick record: `tick:{partition}:{salt}`, chosen to land on `partition`. */
export type TickKey = Key<"tick">;

function invalid(kind: string, text: string, why: string): AgentmeterError {
  return new AgentmeterError("KEY_INVALID", `${JSON.stringify(text)} is not a valid ${kind} key: ${why}`, {
    details: { kind, key: text },
  });
}

function refuseSeparator(kind: string, id: string, separator: string): void {
  if (id.includes(separator)) throw invalid(kind, id, `an id may not contain "${separator}"`);
}

// --- account -------------------------------------------------------------------------------------

/** The ids that name an account, as a record carries them (`enterprise_id` is ignored for platform). */
export type AccountIds = {
  level: "platform" | "app_usage";
  enterprise_id?: string | undefined;
  mozaiks_user_id: string;
  platform_user_id?: string | undefined;
};

/** What an account key says, the inverse of accountKeyOf. */
export type AccountKeyParts =
  | { level: "platform"; mozaiks_user_id: string }
  | { level: "app_usage"; enterprise_id: string; platform_user_id: string };

/**
 * The account a record belongs to, and the Kafka message key producers must use, so that all of an
 * account's records land on one partition in order. A creator's platform account spans apps, so its
 * key is the creator alone; an app end user's account is per app.
 */
export function accountKeyOf(ids: AccountIds | AccountKeyParts): AccountKey {
  if (ids.level === "platform") {
    refuseSeparator("account", ids.mozaiks_user_id, ":");
    return `platform:${ids.mozaiks_user_id}` as AccountKey;
  }
  const enterpriseId = ids.enterprise_id ?? "";
  const userId = ids.platform_user_id ?? "";
  refuseSeparator("account", enterpriseId, ":");
  refuseSeparator("account", userId, ":");
  return `app:${enterpriseId}:${userId}` as AccountKey;
}

export function parseAccountKey(text: string): AccountKeyParts {
  const parts = text.split(":");
  if (parts[0] === "platform" && parts.length === 2) {
    const [, user] = parts as [string, string];
    if (!USER_ID_PATTERN.test(user)) throw invalid("account", text, "the creator id breaks the id rules");
    return { level: "platform", mozaiks_user_id: user };
  }
  if (parts[0] === "app" && parts.length === 3) {
    const [, app, user] = parts as [string, string, string];
    if (!ENTERPRISE_ID_PATTERN.test(app))
      throw invalid("account", text, "the enterprise id breaks the id rules");
    if (!USER_ID_PATTERN.test(user)) throw invalid("account", text, "the end user id breaks the id rules");
    return { level: "app_usage", enterprise_id: app, platform_user_id: user };
  }
  throw invalid("account", text, "expected platform:{user} or app:{enterprise}:{user}");
}

// --- chat ----------------------------------------------------------------------------------------

/**
 * `/` appears in no id (ids.ts), so the account key ends at the first one; chat ids may hold `:`
 * (producers namespace them), which the account key's fixed shape leaves unambiguous anyway.
 */
export function chatKeyOf(accountKey: AccountKey, chatId: string): ChatKey {
  refuseSeparator("chat", chatId, "/");
  return `${accountKey}/${chatId}` as ChatKey;
}

export function parseChatKey(text: string): { accountKey: AccountKey; chatId: string } {
  const slash = text.indexOf("/");
  if (slash < 0) throw invalid("chat", text, "expected {account key}/{chat id}");
  const accountKey = text.slice(0, slash);
  const chatId = text.slice(slash + 1);
  parseAccountKey(accountKey);
  if (!OPAQUE_ID_PATTERN.test(chatId)) throw invalid("chat", text, "the chat id breaks the id rules");
  return { accountKey: accountKey as AccountKey, chatId };
}

// --- workflow ------------------------------------------------------------------------------------

/** A workflow is named per app: two apps may each have a workflow `Support`. */
export function workflowKeyOf(enterpriseId: string, workflowName: string): WorkflowKey {
  refuseSeparator("workflow", enterpriseId, ":");
  refuseSeparator("workflow", workflowName, ":");
  return `${enterpriseId}:${workflowName}` as WorkflowKey;
}

export function parseWorkflowKey(text: string): { enterpriseId: string; workflowName: string } {
  const parts = text.split(":");
  if (parts.length !== 2) throw invalid("workflow", text, "expected {enterprise}:{workflow}");
  const [enterpriseId, workflowName] = parts as [string, string];
  if (!ENTERPRISE_ID_PATTERN.test(enterpriseId))
    throw invalid("workflow", text, "the enterprise id breaks the id rules");
  if (!NAME_PATTERN.test(workflowName))
    throw invalid("workflow", text, "the workflow name breaks the name rules");
  return { enterpriseId, workflowName };
}

// --- topic partition -----------------------------------------------------------------------------

/** Kafka topic names are `[a-zA-Z0-9._-]`; `~` is added by the topic registry for a re-created topic. */
const TOPIC_PATTERN = /^[A-Za-z0-9._~-]{1,249}$/;

/** Also the `_id` of a revenue ledger document, so the form is part of the stored data. */
export function topicPartitionKeyOf(topic: string, partition: number): TopicPartitionKey {
  refuseSeparator("topic-partition", topic, ":");
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw invalid("topic-partition", `${topic}:${partition}`, "the partition is not a non-negative integer");
  }
  return `${topic}:${partition}` as TopicPartitionKey;
}

export function parseTopicPartitionKey(text: string): { topic: string; partition: number } {
  const colon = text.lastIndexOf(":");
  const topic = text.slice(0, colon);
  const digits = text.slice(colon + 1);
  if (colon < 0 || !TOPIC_PATTERN.test(topic))
    throw invalid("topic-partition", text, "expected {topic}:{partition}");
  if (!/^(0|[1-9][0-9]{0,9})$/.test(digits)) {
    throw invalid("topic-partition", text, "the partition is not a non-negative integer");
  }
  return { topic, partition: Number(digits) };
}

// --- namespace -----------------------------------------------------------------------------------

/** A driver's Collection has both fields, so it can be passed as is. */
export type CollectionName = { dbName: string; collectionName: string };

/** MongoDB database names cannot contain `.`; collection names can, so the first `.` ends the database. */
export function namespaceKeyOf(collection: CollectionName): NamespaceKey {
  refuseSeparator("namespace", collection.dbName, ".");
  return `${collection.dbName}.${collection.collectionName}` as NamespaceKey;
}

export function parseNamespaceKey(text: string): CollectionName {
  const dot = text.indexOf(".");
  if (dot <= 0 || dot === text.length - 1)
    throw invalid("namespace", text, "expected {database}.{collection}");
  return { dbName: text.slice(0, dot), collectionName: text.slice(dot + 1) };
}

// --- tick ----------------------------------------------------------------------------------------

/** Salts are short base-36 numbers: the first that lands is found within a few times the partition count. */
const TICK_SALT_PATTERN = /^[0-9a-z]{1,12}$/;
const PARTITION_DIGITS = /^(0|[1-9][0-9]{0,9})$/;

/**
 * A tick belongs to no account, so no account key can place it; its key names the partition it is for
 * plus a salt, and the salt is chosen so that the key's murmur2 partition is that partition. The
 * partition check every record passes (key -> partition) then holds for ticks too, and the key says
 * which partition it was meant for. `tick:` can never be an account key (those start with `platform:`
 * or `app:`).
 */
export function tickKeyOf(partition: number, salt: string): TickKey {
  if (!Number.isSafeInteger(partition) || partition < 0) {
    throw invalid("tick", `tick:${partition}:${salt}`, "the partition is not a non-negative integer");
  }
  if (!TICK_SALT_PATTERN.test(salt)) {
    throw invalid("tick", `tick:${partition}:${salt}`, "the salt is not 1-12 chars of 0-9 a-z");
  }
  return `tick:${partition}:${salt}` as TickKey;
}

export function parseTickKey(text: string): { partition: number; salt: string } {
  const parts = text.split(":");
  if (parts.length !== 3 || parts[0] !== "tick")
    throw invalid("tick", text, "expected tick:{partition}:{salt}");
  const [, digits, salt] = parts as [string, string, string];
  if (!PARTITION_DIGITS.test(digits))
    throw invalid("tick", text, "the partition is not a non-negative integer");
  if (!TICK_SALT_PATTERN.test(salt)) throw invalid("tick", text, "the salt is not 1-12 chars of 0-9 a-z");
  return { partition: Number(digits), salt };
}

/**
 * The first tick key for `partition` (salts 0, 1, 2, ... in base 36) that `lands` accepts, `lands`
 * being "this key's murmur2 partition is `partition`" under the topic's partition count (the
 * partitioner lives with the processor; this module has no hashing). Deterministic, so every processor
 * picks the same key for a partition. Throws KEY_INVALID if none of `maxTries` salts lands, which
 * means `lands` can never be true (e.g. a partition past the count).
 */
export function tickKeyFor(
  partition: number,
  lands: (key: TickKey) => boolean,
  maxTries = 1_000_000,
): TickKey {
  for (let i = 0; i < maxTries; i++) {
    const key = tickKeyOf(partition, i.toString(36));
    if (lands(key)) return key;
  }
  throw invalid(
    "tick",
    `tick:${partition}:*`,
    `no salt of the first ${maxTries} lands on partition ${partition}`,
  );
}
