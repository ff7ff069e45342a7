import type { Config } from "../config.ts";

/**
 * Whether a replay may write into a suffix's namespace, decided from what each of its stores reported
 * (read by the checks in replay.ts; nothing here does I/O). A namespace is used when any one store holds
 * something an earlier replay left: MongoDB databases (its records would be found applied, as
 * duplicates), ClickHouse rows (the audit would compare them beside the new ones), committed offsets of
 * the consumer group (the processor would start where the earlier replay stopped, at the end of the
 * topic, and apply nothing), or a hold-decision reply topic that was ever written (its decisions would be
 * reported as differing copies, and once expired they make a partition start past offset 0, so a
 * missing decision could no longer be told from an expired one), or a dead-letter, budget-event or
 * budget-state topic that was ever written (the new replay would append its outputs to the earlier one's,
 * so whoever reads the replay's topics would count each twice).
 */

/** What each store of the namespace holds, as read: undecided. */
export interface NamespaceContents {
  /** Every MongoDB database on the server (the namespace's are picked here). */
  mongoDatabases: readonly string[];
  /** The tables of the namespace's ClickHouse database (none: no such database); `total_rows` as system.tables gives it. */
  clickhouseTables: readonly { name: string; total_rows: string | number | null }[];
  /** The consumer group's offsets on the input topic, as fetchOffsets gives them (-1: none committed). */
  groupOffsets: readonly { partition: number; offset: string }[];
  /** The reply topic's partitions, as fetchTopicOffsets gives them; none: the topic does not exist. */
  replyOffsets: readonly TopicOffsets[];
  /** The dead-letter, budget-event and budget-state topics' partitions, by topic (absent: no such topic). */
  outputOffsets: Readonly<Record<string, readonly TopicOffsets[]>>;
}

/** One partition's watermarks, as fetchTopicOffsets gives them. */
export type TopicOffsets = { partition: number; low: string; high: string };

export type NamespaceNames = Pick<
  Config,
  | "AGENTMETER_PLATFORM_DB"
  | "AGENTMETER_WORKFLOW_DB"
  | "AGENTMETER_APP_DB_PREFIX"
  | "CLICKHOUSE_DATABASE"
  | "AGENTMETER_GROUP_ID"
  | "AGENTMETER_HOLDS_TOPIC"
  | "AGENTMETER_DLQ_TOPIC"
  | "AGENTMETER_EVENTS_TOPIC"
  | "AGENTMETER_STATE_TOPIC"
>;

/** The output topics besides the reply topic, in the order the refusal names them. */
export function outputTopics(names: NamespaceNames): string[] {
  return [names.AGENTMETER_DLQ_TOPIC, names.AGENTMETER_EVENTS_TOPIC, names.AGENTMETER_STATE_TOPIC];
}

/** The migrations' own record: a processor writes it on start, before any record; it is not replay output. */
const CLICKHOUSE_BOOKKEEPING = new Set(["schema_migrations"]);

/** The first three, and how many more. */
function listed(items: readonly (string | number)[]): string {
  return `${items.slice(0, 3).join(", ")}${items.length > 3 ? ` and ${items.length - 3} more` : ""}`;
}

function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The namespace's MongoDB databases among those on the server. */
export function mongoDatabasesUsed(names: NamespaceNames, databases: readonly string[]): string[] {
  return databases
    .filter(
      (name) =>
        name === names.AGENTMETER_PLATFORM_DB ||
        name === names.AGENTMETER_WORKFLOW_DB ||
        name.startsWith(names.AGENTMETER_APP_DB_PREFIX),
    )
    .sort(byText);
}

/** The tables holding rows; views (no count) and empty tables a started, stopped processor left are not. */
export function clickhouseTablesUsed(tables: NamespaceContents["clickhouseTables"]): string[] {
  return tables
    .filter(({ name, total_rows }) => {
      if (CLICKHOUSE_BOOKKEEPING.has(name) || total_rows === null) return false;
      return BigInt(total_rows) > 0n;
    })
    .map(({ name }) => name)
    .sort(byText);
}

/** The partitions of the input topic the group has committed an offset on (any offset >= 0). */
export function partitionsCommitted(offsets: NamespaceContents["groupOffsets"]): number[] {
  return offsets
    .filter(({ offset }) => BigInt(offset) >= 0n)
    .map(({ partition }) => partition)
    .sort((a, b) => a - b);
}

/** Messages still on a topic, and those written before and removed by retention. */
export function topicMessages(offsets: readonly TopicOffsets[]): {
  present: bigint;
  expired: bigint;
} {
  let present = 0n;
  let expired = 0n;
  for (const { low, high } of offsets) {
    present += BigInt(high) - BigInt(low);
    expired += BigInt(low);
  }
  return { present, expired };
}

/** What the stores hold, one phrase per used store, in a fixed order (MongoDB, ClickHouse, group, topic). */
function found(names: NamespaceNames, contents: NamespaceContents): string[] {
  const phrases: string[] = [];
  const databases = mongoDatabasesUsed(names, contents.mongoDatabases);
  if (databases.length > 0) phrases.push(`MongoDB ${listed(databases)}`);
  const tables = clickhouseTablesUsed(contents.clickhouseTables);
  if (tables.length > 0)
    phrases.push(`ClickHouse ${names.CLICKHOUSE_DATABASE} with rows in ${listed(tables)}`);
  const partitions = partitionsCommitted(contents.groupOffsets);
  if (partitions.length > 0)
    phrases.push(
      `consumer group ${names.AGENTMETER_GROUP_ID} with offsets committed on partition${partitions.length > 1 ? "s" : ""} ${listed(partitions)}`,
    );
  const written: [string, readonly TopicOffsets[]][] = [
    [names.AGENTMETER_HOLDS_TOPIC, contents.replyOffsets],
    ...outputTopics(names).map((topic): [string, readonly TopicOffsets[]] => [
      topic,
      contents.outputOffsets[topic] ?? [],
    ]),
  ];
  for (const [topic, offsets] of written) {
    const { present, expired } = topicMessages(offsets);
    if (present === 0n && expired === 0n) continue;
    const counts =
      present > 0n
        ? `${present} message${present > 1n ? "s" : ""}${expired > 0n ? ` (${expired} more expired)` : ""}`
        : `${expired} expired message${expired > 1n ? "s" : ""}`;
    phrases.push(`topic ${topic} with ${counts}`);
  }
  return phrases;
}

/**
 * The refusal of a replay into a used suffix, or undefined when every store of the namespace is empty.
 * One line: what was found in each used store, then every part of the namespace to drop, whatever was
 * found (a part found empty has nothing to drop; one instruction is simpler to follow than a computed one).
 */
export function usedNamespaceRefusal(
  names: NamespaceNames,
  suffix: string,
  contents: NamespaceContents,
): string | undefined {
  const phrases = found(names, contents);
  if (phrases.length === 0) return undefined;
  return (
    `--suffix ${suffix}: the replay namespace is not empty (${phrases.join("; ")}). ` +
    `To replay into this suffix again, drop all of it: the MongoDB databases ${names.AGENTMETER_PLATFORM_DB}, ` +
    `${names.AGENTMETER_WORKFLOW_DB} and ${names.AGENTMETER_APP_DB_PREFIX}{app} (every app), ` +
    `the ClickHouse database ${names.CLICKHOUSE_DATABASE}, the Kafka consumer group ` +
    `${names.AGENTMETER_GROUP_ID} (its committed offsets) and the topics ${names.AGENTMETER_HOLDS_TOPIC} ` +
    `(its hold decisions), ${outputTopics(names).join(", ")} (its dead letters, budget events and ` +
    `budget states); or choose another suffix`
  );
}

/** What the checks read, each as it settled: its contents, or the error it failed with. */
export interface NamespaceReads {
  mongo: PromiseSettledResult<NamespaceContents["mongoDatabases"]>;
  clickhouse: PromiseSettledResult<NamespaceContents["clickhouseTables"]>;
  kafka: PromiseSettledResult<Pick<NamespaceContents, "groupOffsets" | "replyOffsets" | "outputOffsets">>;
}

/**
 * The refusal given every check's outcome. A check that failed (a store that does not answer, refused
 * credentials) is thrown as it is, the first in the order MongoDB, ClickHouse, Kafka: a namespace is
 * never called used, nor empty, from a store that was not read, even when another store was found used.
 */
export function refusalOfReads(
  names: NamespaceNames,
  suffix: string,
  reads: NamespaceReads,
): string | undefined {
  return usedNamespaceRefusal(names, suffix, {
    mongoDatabases: settledValue(reads.mongo),
    clickhouseTables: settledValue(reads.clickhouse),
    ...settledValue(reads.kafka),
  });
}

function settledValue<T>(settled: PromiseSettledResult<T>): T {
  if (settled.status === "rejected") throw settled.reason;
  return settled.value;
}
