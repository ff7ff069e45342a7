import kafkajs, { type Admin } from "kafkajs";
import type { Config } from "./config.ts";

type TopicNames = Pick<Config, "AGENTMETER_INPUT_TOPIC" | "AGENTMETER_DLQ_TOPIC" | "AGENTMETER_STATE_TOPIC">;

/** Each topic's settings as the broker applies them (its own, else the broker's defaults), by name. */
export type TopicSettings = ReadonlyMap<string, ReadonlyMap<string, string>>;

/** max.message.bytes of the dead-letter topic the processor creates (kafka.ts): room for the largest input. */
export const DEAD_LETTER_TOPIC_MAX_BYTES = 8 * 1024 * 1024;

/**
 * Room in a dead letter beside the record's bytes: the envelope's fields, the reason (which may quote
 * the record's fields) and the key, twice when it is not text.
 */
export const LETTER_OVERHEAD_BYTES = 64 * 1024;

/** The largest dead letter of a record of `inputBytes`: its bytes go in base64, a third larger. */
export function letterBytesFor(inputBytes: number): number {
  return 4 * Math.ceil(inputBytes / 3) + LETTER_OVERHEAD_BYTES;
}

/**
 * What the pipeline needs of topics it did not create (an operator's, in production) and would not
 * otherwise notice until it is too late, one line each:
 *  - the dead-letter topic takes a letter of the largest record the input topic takes. A letter the
 *    broker refuses as too large is a batch that can never be finished: the partition stops for good.
 *  - the budget-state topic is compacted: budget views read it from the start, and an idle account's
 *    state deleted by retention is an account the views no longer know.
 *  - the input and dead-letter topics are not compacted: their messages are keyed by account, so
 *    compaction would keep only each account's latest record or letter.
 */
export function topicSettingProblems(settings: TopicSettings, topics: TopicNames): string[] {
  const problems: string[] = [];
  const input = Number(settings.get(topics.AGENTMETER_INPUT_TOPIC)?.get("max.message.bytes"));
  const letters = Number(settings.get(topics.AGENTMETER_DLQ_TOPIC)?.get("max.message.bytes"));
  if (Number.isSafeInteger(input) && Number.isSafeInteger(letters) && letters < letterBytesFor(input)) {
    problems.push(
      `topic ${topics.AGENTMETER_DLQ_TOPIC}: max.message.bytes is ${letters}, but a dead letter of the largest record ` +
        `${topics.AGENTMETER_INPUT_TOPIC} takes (max.message.bytes ${input}) needs ${letterBytesFor(input)}: ` +
        `raise it (kafka-configs.sh --alter --entity-type topics --entity-name ${topics.AGENTMETER_DLQ_TOPIC} ` +
        `--add-config max.message.bytes=${Math.max(letterBytesFor(input), DEAD_LETTER_TOPIC_MAX_BYTES)})`,
    );
  }
  for (const [topic, what] of [
    [topics.AGENTMETER_INPUT_TOPIC, "usage records"],
    [topics.AGENTMETER_DLQ_TOPIC, "dead letters"],
  ] as const) {
    const kept = settings.get(topic)?.get("cleanup.policy");
    if (kept?.split(",").includes("compact"))
      problems.push(
        `topic ${topic}: cleanup.policy is ${kept}, but compaction keeps only the latest message of each key ` +
          `(an account's): its earlier ${what} would be deleted unbilled: ` +
          `kafka-configs.sh --alter --entity-type topics --entity-name ${topic} --add-config cleanup.policy=delete`,
      );
  }
  const policy = settings.get(topics.AGENTMETER_STATE_TOPIC)?.get("cleanup.policy");
  if (policy !== undefined && !policy.split(",").includes("compact")) {
    problems.push(
      `topic ${topics.AGENTMETER_STATE_TOPIC}: cleanup.policy is ${policy}, but budget states must be compacted ` +
        `(an idle account's state deleted by retention is lost to every budget view): ` +
        `kafka-configs.sh --alter --entity-type topics --entity-name ${topics.AGENTMETER_STATE_TOPIC} --add-config cleanup.policy=compact`,
    );
  }
  return problems;
}

/**
 * Settings that lose records only in some deployments, one line each, logged as warnings at start (not
 * refused: an operator may keep the input topic in tiered storage, or audit ranges only):
 *  - the input topic's retention is shorter than the lateness the core accepts
 *    (`event_time.max_behind_seconds`). Retention counts from each record's log time, which a producer
 *    may set to when the usage happened: a backfill inside the accepted lateness can be deleted before a
 *    lagging processor reads it, and such a record is never billed.
 *  - the dead-letter topic's retention is finite: a letter deleted before it is re-driven is a record
 *    never billed.
 *  - either has a finite retention.bytes: past it the oldest records go, whatever their time.
 */
export function topicSettingWarnings(
  settings: TopicSettings,
  topics: TopicNames,
  maxBehindMs: number,
): string[] {
  const warnings: string[] = [];
  const input = Number(settings.get(topics.AGENTMETER_INPUT_TOPIC)?.get("retention.ms"));
  if (Number.isSafeInteger(input) && input >= 0 && input < maxBehindMs) {
    warnings.push(
      `topic ${topics.AGENTMETER_INPUT_TOPIC}: retention.ms is ${input}, shorter than the ${maxBehindMs} ms a record's ` +
        "occurred_at may lie before its log time (event_time.max_behind_seconds): a late record can be deleted " +
        "before it is billed, and no complete audit reaches past it: " +
        `kafka-configs.sh --alter --entity-type topics --entity-name ${topics.AGENTMETER_INPUT_TOPIC} --add-config retention.ms=-1`,
    );
  }
  const letters = Number(settings.get(topics.AGENTMETER_DLQ_TOPIC)?.get("retention.ms"));
  if (Number.isSafeInteger(letters) && letters >= 0) {
    warnings.push(
      `topic ${topics.AGENTMETER_DLQ_TOPIC}: retention.ms is ${letters}: a dead letter deleted before it is re-driven ` +
        "is a record never billed: " +
        `kafka-configs.sh --alter --entity-type topics --entity-name ${topics.AGENTMETER_DLQ_TOPIC} --add-config retention.ms=-1`,
    );
  }
  for (const topic of [topics.AGENTMETER_INPUT_TOPIC, topics.AGENTMETER_DLQ_TOPIC]) {
    const bytes = Number(settings.get(topic)?.get("retention.bytes"));
    if (Number.isSafeInteger(bytes) && bytes >= 0)
      warnings.push(
        `topic ${topic}: retention.bytes is ${bytes}: past it a partition's oldest records are deleted, billed or ` +
          "not: " +
          `kafka-configs.sh --alter --entity-type topics --entity-name ${topic} --add-config retention.bytes=-1`,
      );
  }
  return warnings;
}

/** The settings topicSettingProblems and topicSettingWarnings read, from the brokers (DescribeConfigs on each topic). */
export async function readTopicSettings(admin: Admin, topics: TopicNames): Promise<TopicSettings> {
  const names = [topics.AGENTMETER_INPUT_TOPIC, topics.AGENTMETER_DLQ_TOPIC, topics.AGENTMETER_STATE_TOPIC];
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [...new Set(names)].map((name) => ({
      // A property of the default export: node's ESM view of kafkajs (CommonJS) does not name it.
      type: kafkajs.ConfigResourceTypes.TOPIC,
      name,
      configNames: ["max.message.bytes", "cleanup.policy", "retention.ms", "retention.bytes"],
    })),
  });
  const settings = new Map<string, Map<string, string>>();
  for (const resource of resources) {
    const entries = new Map<string, string>();
    for (const entry of resource.configEntries) entries.set(entry.configName, entry.configValue);
    settings.set(resource.resourceName, entries);
  }
  return settings;
}
