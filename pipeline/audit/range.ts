import type { Admin } from "kafkajs";
import { AgentmeterError } from "../../schemas/errors.ts";
import { sourceName } from "../../sinks/mongo/topic-registry.ts";

/** Offsets [from, to) of one partition, as decimal strings (Kafka offsets are int64). */
export interface PartitionRange {
  partition: number;
  from: string;
  to: string;
}

export interface TopicRange {
  topic: string;
  partitions: PartitionRange[];
  /**
   * True when the range is the whole topic as it stood when the audit started: every partition from
   * offset 0 (nothing removed by retention) to its high watermark, and the topic never re-created (its
   * incarnation 0: a re-created topic starts again at offset 0, but the accounts carry the history of the
   * one before, which no log holds any more). Only then are absolute figures (balances, ledgers, totals)
   * comparable; any other range is a delta audit (see docs/audit.md).
   */
  complete: boolean;
  /**
   * The topic's incarnation the range was read from (AgentmeterTopics: 0 until the topic is deleted and
   * created again); absent means 0.
   */
  incarnation?: number;
  /**
   * The name the stores keep this incarnation's rows, ledgers and watermarks under (sourceName: the
   * topic, or `topic~N`); absent means the topic's own name.
   */
  source?: string;
}

/** The name the range's rows are stored under in ClickHouse (and its watermarks in MongoDB). */
export function sourceOf(range: TopicRange): string {
  return range.source ?? sourceName(range.topic, range.incarnation ?? 0);
}

/**
 * The range as read from incarnation `incarnation` of its topic: its rows are stored under that
 * incarnation's source name, and a read of the whole log of a re-created topic (incarnation above 0) is
 * not complete: what came before the re-creation is in the stores (balances, ledgers, rows of the earlier
 * names) but in no log.
 */
export function ofIncarnation(range: TopicRange, incarnation: number): TopicRange {
  if (!Number.isSafeInteger(incarnation) || incarnation < 0)
    throw new Error(`audit: incarnation ${incarnation} is not a whole number`);
  return {
    ...range,
    complete: range.complete && incarnation === 0,
    incarnation,
    source: sourceName(range.topic, incarnation),
  };
}

/** Per-partition offsets from the command line; `all` applies to partitions not named. */
export interface OffsetSpec {
  all?: bigint;
  byPartition: Map<number, bigint>;
}

export type RangeRequest =
  | { kind: "all" }
  | { kind: "time"; fromMs: number }
  | { kind: "offsets"; from?: OffsetSpec; to?: OffsetSpec };

function pick(spec: OffsetSpec | undefined, partition: number): bigint | undefined {
  return spec?.byPartition.get(partition) ?? spec?.all;
}

function clamp(value: bigint, low: bigint, high: bigint): bigint {
  return value < low ? low : value > high ? high : value;
}

/**
 * Resolves a request into exact offsets, fixing the end of every partition at its high watermark now:
 * records produced while the audit runs are not part of it (the stores may or may not have them yet).
 */
export async function resolveRange(admin: Admin, topic: string, request: RangeRequest): Promise<TopicRange> {
  const topics = await admin.listTopics();
  if (!topics.includes(topic)) {
    throw new AgentmeterError("CLI_USAGE", `topic ${topic} does not exist (AGENTMETER_INPUT_TOPIC)`);
  }
  const offsets = (await admin.fetchTopicOffsets(topic)).sort((a, b) => a.partition - b.partition);
  const known = new Set(offsets.map((entry) => entry.partition));
  if (request.kind === "offsets") {
    for (const spec of [request.from, request.to]) {
      for (const partition of spec?.byPartition.keys() ?? []) {
        if (!known.has(partition))
          throw new AgentmeterError("CLI_USAGE", `partition ${partition} is not a partition of ${topic}`);
      }
    }
  }
  const byTime =
    request.kind === "time"
      ? new Map(
          (await admin.fetchTopicOffsetsByTimestamp(topic, request.fromMs)).map((entry) => [
            entry.partition,
            BigInt(entry.offset),
          ]),
        )
      : undefined;
  let complete = true;
  const partitions = offsets.map(({ partition, low, high }) => {
    const lowOffset = BigInt(low);
    const highOffset = BigInt(high);
    let from = lowOffset;
    let to = highOffset;
    if (request.kind === "time") from = byTime?.get(partition) ?? highOffset;
    if (request.kind === "offsets") {
      from = pick(request.from, partition) ?? lowOffset;
      to = pick(request.to, partition) ?? highOffset;
    }
    from = clamp(from < 0n ? highOffset : from, lowOffset, highOffset);
    to = clamp(to, from, highOffset);
    if (from !== 0n || to !== highOffset) complete = false;
    return { partition, from: from.toString(), to: to.toString() };
  });
  return { topic, partitions, complete };
}

/** `12` (every partition) or `0:12,3:40` (per partition), as given to --from-offset / --to-offset. */
export function parseOffsetSpec(text: string, option: string): OffsetSpec {
  const spec: OffsetSpec = { byPartition: new Map() };
  for (const part of text.split(",")) {
    const item = part.trim();
    const single = /^([0-9]{1,18})$/.exec(item);
    const pair = /^([0-9]{1,5}):([0-9]{1,18})$/.exec(item);
    if (single !== null) {
      if (spec.all !== undefined)
        throw new AgentmeterError("CLI_USAGE", `${option}: more than one offset for all partitions`);
      spec.all = BigInt(single[1]!);
    } else if (pair !== null) {
      const partition = Number(pair[1]);
      if (spec.byPartition.has(partition))
        throw new AgentmeterError("CLI_USAGE", `${option}: partition ${partition} given twice`);
      spec.byPartition.set(partition, BigInt(pair[2]!));
    } else {
      throw new AgentmeterError(
        "CLI_USAGE",
        `${option}: '${item}' is not OFFSET or PARTITION:OFFSET (e.g. 1200 or 0:1200,3:40)`,
      );
    }
  }
  return spec;
}
