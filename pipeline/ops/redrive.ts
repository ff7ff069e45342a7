import type { Kafka, Message } from "kafkajs";
import { AgentmeterError, type ErrorCode } from "../../schemas/errors.ts";
import { accountKeyOf, deadLetterSchema, decodeRecord, letterKey } from "../../schemas/index.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { type RangeRequest, resolveRange, type TopicRange } from "../audit/range.ts";
import { type ReadProgress, readTopicBatches } from "../audit/topic-reader.ts";
import { redactUrl } from "../auth/redact.ts";
import type { Config } from "../config.ts";
import { idempotentProducer } from "../kafka.ts";
import type { Logger } from "../log.ts";
import { clickHouseFor } from "../runtime/clients.ts";
import { reach } from "../runtime/reach.ts";

/** Headers a re-driven record carries: where its dead letter was, and why the record was refused. */
export const REDRIVEN_FROM_HEADER = "agentmeter-redriven-from";
export const REDRIVEN_REASON_HEADER = "agentmeter-redriven-reason";

/** Why a dead letter was not re-driven; each is counted. */
export type RedriveSkip =
  /** Its reason code is not one asked for. */
  | "other_reason"
  /** Its record came from another topic than this namespace's input topic. */
  | "other_topic"
  /** The dead letter itself does not decode (not written by agentmeter, or by a newer version). */
  | "unreadable_letter"
  /** A credit: its operator signature is a header the dead letter does not keep, so it would be refused again. */
  | "credit"
  /** A tick: the processor writes its own, and an old one moves no clock. */
  | "tick"
  /** A usage or adjustment row at its input position is stored: its flush landed in part (see storedAt). */
  | "stored_in_part"
  /** --rekey asked for, but the record does not decode, so it has no account key to take. */
  | "no_account_key";

export type RedriveDecision =
  | {
      send: true;
      reason: ErrorCode;
      message: Message;
      /**
       * The record's occurred_at (0 when it has none readable), where it sat in the input topic, and the
       * name the stores keep that topic's rows under, when the letter says (see deadLetterSchema).
       */
      source: { occurredMs: number; partition: number; offset: bigint; storedAs?: string };
    }
  | { send: false; skip: RedriveSkip };

export interface RedriveSelection {
  /** The input topic records must have come from (the namespace's AGENTMETER_INPUT_TOPIC). */
  inputTopic: string;
  reasons: ReadonlySet<ErrorCode>;
  /** Key each record by its account (accountKeyOf) rather than the key it was sent with. */
  rekey: boolean;
  maxRecordBytes: number;
}

/** Only the record's type and time, not validated: a record refused for its content is still re-driven. */
function peek(bytes: Buffer): { type: unknown; occurredMs: number } {
  try {
    const parsed: unknown = JSON.parse(bytes.toString("utf8"));
    if (typeof parsed !== "object" || parsed === null) return { type: undefined, occurredMs: 0 };
    const { type, occurred_at: occurredAt } = parsed as { type?: unknown; occurred_at?: unknown };
    const ms = typeof occurredAt === "string" ? Date.parse(occurredAt) : Number.NaN;
    return { type, occurredMs: Number.isFinite(ms) ? ms : 0 };
  } catch {
    return { type: undefined, occurredMs: 0 };
  }
}

/**
 * What to do with one message of the dead-letter topic: send its original bytes back to the input topic
 * (with its original key, or its account's with `rekey`), or skip it, and why. Pure.
 */
export function redriveDecision(
  value: Buffer | null,
  position: { topic: string; partition: number; offset: string },
  selection: RedriveSelection,
): RedriveDecision {
  let letter: ReturnType<typeof deadLetterSchema.parse>;
  try {
    letter = deadLetterSchema.parse(JSON.parse((value ?? Buffer.alloc(0)).toString("utf8")));
  } catch {
    return { send: false, skip: "unreadable_letter" };
  }
  if (letter.source.topic !== selection.inputTopic) return { send: false, skip: "other_topic" };
  if (!selection.reasons.has(letter.reason_code)) return { send: false, skip: "other_reason" };
  const original = Buffer.from(letter.original, "base64");
  const { type, occurredMs } = peek(original);
  if (type === "credit") return { send: false, skip: "credit" };
  if (type === "tick") return { send: false, skip: "tick" };
  let key = letterKey(letter);
  if (selection.rekey) {
    const decoded = decodeRecord(original, { maxBytes: selection.maxRecordBytes });
    if (!decoded.ok) return { send: false, skip: "no_account_key" };
    key = accountKeyOf(decoded.record);
  }
  return {
    send: true,
    reason: letter.reason_code,
    source: {
      occurredMs,
      partition: letter.source.partition,
      offset: BigInt(letter.source.offset),
      ...(letter.source.stored_as === undefined ? {} : { storedAs: letter.source.stored_as }),
    },
    message: {
      key,
      value: original,
      headers: {
        [REDRIVEN_FROM_HEADER]: `${position.topic}/${position.partition}/${position.offset}`,
        [REDRIVEN_REASON_HEADER]: letter.reason_code,
      },
    },
  };
}

/** Messages per send; the idempotent producer keeps their order within a partition. */
const SEND_CHUNK = 500;

/** Where a re-driven record goes in the send: its event time, then where it was first refused. */
type SendOrder = [occurredMs: number, partition: number, offset: bigint];

interface Chosen {
  message: Message;
  order: SendOrder;
  reason: ErrorCode;
  /** The letter's stored_as: undefined for a letter that does not say. */
  storedAs: string | undefined;
}

function positionKey(storedAs: string | undefined, partition: number, offset: bigint): string {
  return `${storedAs ?? ""}|${partition}/${offset}`;
}

/** Input positions asked about per query (inlined: validated integers). */
const POSITIONS_PER_QUERY = 1_000;

/**
 * The chosen letters (as positionKey) whose input position a usage or adjustment row is stored at. A
 * flush writes those rows first and the ledgers after (pipeline/processor/flush.ts): a record refused
 * after its flush had landed in part (its owner died, or a store refused its account) holds billed
 * effects already, and a re-drive would bill them a second time. Such letters are skipped
 * (`stored_in_part`): the audit names their accounts. Rows are looked for under the name the letter says
 * the stores keep its topic under; a letter that does not say may come from any incarnation of the
 * topic, so a row under any of them counts (a letter skipped wrongly is reported, never billed twice).
 */
async function storedAt(config: Config, chosen: readonly Chosen[]): Promise<Set<string>> {
  const client = clickHouseFor(config);
  const stored = new Set<string>();
  const byName = new Map<string | undefined, Chosen[]>();
  for (const item of chosen) {
    const group = byName.get(item.storedAs);
    if (group === undefined) byName.set(item.storedAs, [item]);
    else group.push(item);
  }
  try {
    const db = quoteIdent(config.CLICKHOUSE_DATABASE);
    for (const [storedAs, items] of byName) {
      const topicIs =
        storedAs === undefined
          ? "(topic = {topic:String} OR startsWith(topic, {incarnations:String}))"
          : "topic = {topic:String}";
      for (let start = 0; start < items.length; start += POSITIONS_PER_QUERY) {
        const tuples = items
          .slice(start, start + POSITIONS_PER_QUERY)
          .map(({ order: [, partition, offset] }) => `(${Math.trunc(partition)}, ${BigInt(offset)})`)
          .join(", ");
        const where = `${topicIs} AND (partition, offset) IN (${tuples})`;
        const result = await client.query({
          query: `SELECT partition, toString(offset) AS offset FROM ${db}.usage_events WHERE ${where}
                  UNION ALL SELECT partition, toString(offset) AS offset FROM ${db}.adjustments WHERE ${where}`,
          query_params: {
            topic: storedAs ?? config.AGENTMETER_INPUT_TOPIC,
            incarnations: `${config.AGENTMETER_INPUT_TOPIC}~`,
          },
          format: "JSONEachRow",
        });
        for (const row of await result.json<{ partition: number; offset: string }>())
          stored.add(positionKey(storedAs, Number(row.partition), BigInt(row.offset)));
      }
    }
  } finally {
    await client.close();
  }
  return stored;
}

/**
 * The letters of one account can sit on several partitions of the dead-letter topic (sent without a
 * key, or under keys that differ), read side by side: sent as read, a void could overtake its usage.
 * So everything chosen is sent in one order: the record's occurred_at, then its place in the input topic.
 */
export function sendOrderOf(decision: Extract<RedriveDecision, { send: true }>): SendOrder {
  const { occurredMs, partition, offset } = decision.source;
  return [occurredMs, partition, offset];
}

export function compareOrder(a: SendOrder, b: SendOrder): number {
  return a[0] - b[0] || a[1] - b[1] || (a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0);
}

export interface RedriveOptions {
  config: Config;
  reasons: ReadonlySet<ErrorCode>;
  rekey: boolean;
  /** Count what would be re-driven, send nothing. */
  dryRun: boolean;
  /** Offsets of the dead-letter topic to read (default: all of it, up to its end at start). */
  range: RangeRequest;
  logger: Logger;
  onProgress?: (progress: ReadProgress) => void;
}

export interface RedriveResult {
  topic: string;
  /** The dead-letter topic's offsets read: a next run can start at `to` (--from-offset). */
  range: TopicRange;
  read: number;
  /** Sent back to the input topic (or, on a dry run, that would be), by reason code. */
  redriven: Partial<Record<ErrorCode, number>>;
  skipped: Partial<Record<RedriveSkip, number>>;
}

/**
 * Reads the dead-letter topic and sends the original bytes of the dead letters whose reason is asked
 * for back to the input topic, all of them ordered by the record's occurred_at, then by where it sat in
 * the input topic (sendOrderOf). The chosen letters are held in memory until the read is done. The
 * processor then takes them like any record: one it applied before is a duplicate by its
 * record_id, so re-driving the same letters twice bills nothing twice (within the dedupe horizon).
 */
export async function redrive(kafka: Kafka, options: RedriveOptions): Promise<RedriveResult> {
  const { config } = options;
  const topic = config.AGENTMETER_DLQ_TOPIC;
  const admin = kafka.admin();
  await admin.connect();
  let range: TopicRange;
  try {
    if (!(await admin.listTopics()).includes(topic))
      throw new AgentmeterError(
        "CLI_USAGE",
        `topic ${topic} does not exist (AGENTMETER_DLQ_TOPIC): nothing was ever dead-lettered there`,
      );
    range = await resolveRange(admin, topic, options.range);
  } finally {
    await admin.disconnect();
  }
  const selection: RedriveSelection = {
    inputTopic: config.AGENTMETER_INPUT_TOPIC,
    reasons: options.reasons,
    rekey: options.rekey,
    maxRecordBytes: config.AGENTMETER_MAX_RECORD_BYTES,
  };
  const result: RedriveResult = { topic, range, read: 0, redriven: {}, skipped: {} };
  const chosen: Chosen[] = [];
  await readTopicBatches(
    kafka,
    range,
    (partition, messages) => {
      for (const message of messages) {
        result.read++;
        const decision = redriveDecision(
          message.value,
          { topic, partition, offset: message.offset },
          selection,
        );
        if (!decision.send) {
          result.skipped[decision.skip] = (result.skipped[decision.skip] ?? 0) + 1;
          continue;
        }
        chosen.push({
          message: decision.message,
          order: sendOrderOf(decision),
          reason: decision.reason,
          storedAs: decision.source.storedAs,
        });
      }
    },
    options.onProgress,
  );
  const stored =
    chosen.length === 0
      ? new Set<string>()
      : await reach("ClickHouse", redactUrl(config.CLICKHOUSE_URL), () => storedAt(config, chosen));
  const sending = chosen.filter((item) => {
    if (stored.has(positionKey(item.storedAs, item.order[1], item.order[2]))) {
      result.skipped.stored_in_part = (result.skipped.stored_in_part ?? 0) + 1;
      return false;
    }
    result.redriven[item.reason] = (result.redriven[item.reason] ?? 0) + 1;
    return true;
  });
  if (!options.dryRun && sending.length > 0) {
    sending.sort((a, b) => compareOrder(a.order, b.order));
    const producer = idempotentProducer(kafka, options.logger);
    await producer.connect();
    try {
      for (let start = 0; start < sending.length; start += SEND_CHUNK) {
        await producer.send({
          topic: config.AGENTMETER_INPUT_TOPIC,
          acks: -1,
          messages: sending.slice(start, start + SEND_CHUNK).map((item) => item.message),
        });
      }
    } finally {
      await producer.disconnect();
    }
  }
  const total = range.partitions.reduce((sum, p) => sum + Number(BigInt(p.to) - BigInt(p.from)), 0);
  options.onProgress?.({ read: result.read, total, done: true });
  return result;
}
