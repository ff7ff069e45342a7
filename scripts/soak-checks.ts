/**
 * The soak's verdict, once the group's lag is zero: the audit's own diff, then checks that do not go
 * through the audit's code: `agentmeter compute` over the topic against the stores' sums, the dead-letter
 * topic against the hostile records sent, the acknowledged records against the topic, and the compacted
 * budget-state topic against the accounts' final states.
 */
import { createWriteStream } from "node:fs";
import { PassThrough } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import type { Kafka, KafkaMessage } from "kafkajs";
import type { Difference } from "../pipeline/audit/diff.ts";
import { accountFigures } from "../pipeline/audit/figures.ts";
import { resolveRange } from "../pipeline/audit/range.ts";
import { readMongo } from "../pipeline/audit/read-mongo.ts";
import type { AuditReport } from "../pipeline/audit/report.ts";
import { runAudit } from "../pipeline/audit/run-audit.ts";
import { readTopic } from "../pipeline/audit/topic-reader.ts";
import { computeCommand } from "../pipeline/cli/compute.ts";
import type { Config } from "../pipeline/config.ts";
import {
  applyBatch,
  type BillingConfig,
  type BillingState,
  budgetStateOf,
  emptyState,
  type SequencedRecord,
} from "../pipeline/core/index.ts";
import type { Logger } from "../pipeline/log.ts";
import { mongoLayoutFor } from "../pipeline/runtime/clients.ts";
import { AgentmeterError } from "../schemas/errors.ts";
import { accountKeyOf, bigintReplacer, DEFAULT_MAX_RECORD_BYTES, decodeRecord } from "../schemas/index.ts";
import { createMongo } from "../sinks/mongo/client.ts";
import { type SoakPlan, soakStream } from "./soak-stream.ts";

/** The documented bound on event time ahead of log time (billing.md): compute has no log time to check it. */
const MAX_AHEAD_MS = 900_000;

export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  /** A few examples of what failed, for the report. */
  evidence?: unknown[];
}

export interface Verdict {
  checks: CheckResult[];
  audit: Pick<AuditReport, "counts" | "summary"> & { differences: Difference[] };
  lost: number;
  doubled: number;
  topicMessages: number;
}

function header(message: KafkaMessage, name: string): string | undefined {
  const value = message.headers?.[name];
  if (value === undefined) return undefined;
  return Array.isArray(value) ? String(value[0]) : String(value);
}

async function readWhole(
  kafka: Kafka,
  topic: string,
  onMessage: (partition: number, message: KafkaMessage) => void,
): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  let range: Awaited<ReturnType<typeof resolveRange>>;
  try {
    range = await resolveRange(admin, topic, { kind: "all" });
  } finally {
    await admin.disconnect();
  }
  await readTopic(kafka, range, (partition, message) => onMessage(partition, message as KafkaMessage));
}

/** Runs `agentmeter compute FILE --format json` in process and returns its report without the outputs. */
async function computeTotals(file: string): Promise<{ billed: bigint; creator: bigint; platform: bigint }> {
  let last = "";
  const sink = { write: (text: string) => (last = text) };
  const stderr = { write: () => true };
  const code = await computeCommand.run([file, "--format", "json"], {
    stdin: new PassThrough(),
    stdout: sink,
    stderr,
  });
  // 0: all applied; 3: some rejected by the rules (the late records): both computed everything.
  if (code !== 0 && code !== 3) throw new AgentmeterError("CLI_USAGE", `compute exited ${code}`);
  // The report's accounts, creators and totals come in the last write, after the streamed outputs.
  const rest = JSON.parse(`{${last.trim().replace(/^,/, "")}`) as {
    totals: { billed_micros: string; creator_share_micros: string; platform_fee_micros: string };
  };
  return {
    billed: BigInt(rest.totals.billed_micros),
    creator: BigInt(rest.totals.creator_share_micros),
    platform: BigInt(rest.totals.platform_fee_micros),
  };
}

/**
 * The differences by store and field (how many, and the sum of their deltas), so that a failed soak in CI,
 * whose run directory is gone with the clone, still says where the figures went wrong.
 */
function differencesByStore(differences: readonly Difference[]): string {
  if (differences.length === 0) return "";
  const groups = new Map<string, { count: number; delta: bigint }>();
  for (const difference of differences) {
    const name = `${difference.store}.${difference.field}`;
    const group = groups.get(name) ?? { count: 0, delta: 0n };
    group.count++;
    if (difference.delta !== null && /^-?\d+$/.test(difference.delta))
      group.delta += BigInt(difference.delta);
    groups.set(name, group);
  }
  const parts = [...groups].map(([name, group]) => `${name} ${group.count}x (sum of deltas ${group.delta})`);
  return `; by store and field: ${parts.join(", ")}`;
}

export async function runChecks(options: {
  plan: SoakPlan;
  config: Config;
  billing: BillingConfig;
  kafka: Kafka;
  logger: Logger;
  acked: Map<number, string>;
  recordsFile: string;
}): Promise<Verdict> {
  const { plan, config, billing, kafka, logger } = options;
  const checks: CheckResult[] = [];

  logger.info("check 1: agentmeter audit over the whole topic");
  let report = await runAudit({ config, billing, range: { kind: "all" }, logger });
  // A difference in the stores persists; one that is gone on a second read a while later was in the
  // read (the local ClickHouse engine was seen to show a table's parts wrongly for an instant while a
  // merge swapped them in, sinks/clickhouse/usage-events.ts). The verdict is the second read's; the
  // first read's differences stay in the detail, so a transient one is still reported.
  let firstRead = "";
  if (report.differences.length > 0) {
    const first = report;
    logger.warn({ differences: first.differences.length }, "audit found differences: reading again in 15 s");
    await sleep(15_000);
    report = await runAudit({ config, billing, range: { kind: "all" }, logger });
    firstRead = `; the first read, 15 s before, found ${first.differences.length}${differencesByStore(first.differences)}`;
  }
  checks.push({
    name: "audit",
    ok: report.differences.length === 0,
    detail: `${report.differences.length} differences over ${report.counts.records} records${differencesByStore(report.differences)}${firstRead}`,
    evidence: report.differences.slice(0, 5),
  });
  let lost = 0;
  let doubled = 0;
  for (const difference of report.differences) {
    if (difference.field !== "records" || difference.delta === null) continue;
    const delta = Number(difference.delta);
    if (delta < 0) lost -= delta;
    else doubled += delta;
  }

  logger.info("check 2: the input topic (acknowledged records, the records file for compute, final states)");
  const seen = new Map<number, string[]>();
  const out = createWriteStream(options.recordsFile);
  let state: BillingState = emptyState();
  let chunk: SequencedRecord[] = [];
  let topicMessages = 0;
  const apply = () => {
    state = applyBatch(state, chunk, billing).state;
    chunk = [];
  };
  let foreign = 0;
  await readWhole(kafka, config.AGENTMETER_INPUT_TOPIC, (_partition, message) => {
    topicMessages++;
    const seqHeader = header(message, "soak-seq");
    if (seqHeader === undefined) {
      // Not the soak producer's: the processors' own tick records (tick-clock.ts) share the input topic.
      foreign++;
    } else {
      const seq = Number(seqHeader);
      const list = seen.get(seq) ?? [];
      list.push(`${header(message, "soak-inc")} ${header(message, "soak-try")}`);
      seen.set(seq, list);
    }
    if (message.value === null) return;
    const decoded = decodeRecord(message.value, { maxBytes: DEFAULT_MAX_RECORD_BYTES });
    if (!decoded.ok) return;
    // What the processor admits before the core: the key must be the record's account key.
    if (message.key?.toString("utf8") !== accountKeyOf(decoded.record)) return;
    const logTimeMs = Number(message.timestamp);
    chunk.push({ record: decoded.record, logTimeMs });
    if (chunk.length >= 20_000) apply();
    if (Date.parse(decoded.record.occurred_at) - logTimeMs > MAX_AHEAD_MS) return;
    out.write(`${message.value.toString("utf8")}\n`);
  });
  apply();
  await new Promise<void>((resolve, reject) =>
    out.end((error?: Error | null) => (error ? reject(error) : resolve())),
  );

  const missingAcked: number[] = [];
  const resentAcked: number[] = [];
  const doubledSends: number[] = [];
  for (const [seq, by] of options.acked) {
    const copies = seen.get(seq) ?? [];
    if (!copies.includes(by)) missingAcked.push(seq);
    // The soak's producer never sends an acknowledged record again: any other copy was sent before the ack.
    const [inc] = by.split(" ");
    if (copies.some((copy) => Number(copy.split(" ")[0]) > Number(inc))) resentAcked.push(seq);
  }
  for (const [seq, copies] of seen) if (new Set(copies).size !== copies.length) doubledSends.push(seq);
  const neverSent: number[] = [];
  for (let seq = 0; seq < plan.records; seq++) if (!seen.has(seq)) neverSent.push(seq);
  lost += missingAcked.length;
  doubled += resentAcked.length + doubledSends.length;
  checks.push({
    name: "acknowledged records on the topic",
    ok: missingAcked.length + resentAcked.length + doubledSends.length + neverSent.length === 0,
    detail: `${options.acked.size} acknowledged; missing ${missingAcked.length}, acknowledged then re-sent ${resentAcked.length}, one send twice ${doubledSends.length}; stream messages never on the topic ${neverSent.length}; ${topicMessages - foreign} soak messages for ${plan.records} in the stream, ${foreign} from other writers (ticks)`,
    evidence: [...missingAcked, ...resentAcked, ...doubledSends, ...neverSent].slice(0, 10),
  });

  logger.info("check 3: agentmeter compute over the topic's records against the stores' sums");
  const computed = await computeTotals(options.recordsFile);
  const stored = { billed: 0n, creator: 0n, platform: 0n };
  const mongo = createMongo(config.MONGODB_URI);
  try {
    await mongo.connect();
    const apps = new Set<string>();
    for (const account of Object.values(state.accounts))
      if (account.enterprise_id !== null) apps.add(account.enterprise_id);
    const actual = await readMongo(mongo, mongoLayoutFor(mongo, config), apps);
    for (const { doc } of actual.accounts.values()) {
      const figures = accountFigures(doc);
      stored.billed += figures.billed_micros ?? 0n;
      stored.creator += figures.creator_share_micros ?? 0n;
      stored.platform += figures.platform_fee_micros ?? 0n;
    }
  } finally {
    await mongo.close();
  }
  checks.push({
    name: "compute sums = stores' sums",
    ok:
      computed.billed === stored.billed &&
      computed.creator === stored.creator &&
      computed.platform === stored.platform,
    detail: `billed ${stored.billed} (compute ${computed.billed}), creator ${stored.creator} (${computed.creator}), platform ${stored.platform} (${computed.platform}) micros`,
  });

  logger.info("check 4: dead letters against the hostile and late records sent");
  const expected = new Map<string, string>();
  for (const item of soakStream(plan))
    if (item.expect !== undefined) expected.set(item.recordId, item.expect);
  const got = new Map<string, Set<string>>();
  let letters = 0;
  await readWhole(kafka, config.AGENTMETER_DLQ_TOPIC, (_partition, message) => {
    letters++;
    const letter = JSON.parse(message.value?.toString("utf8") ?? "{}") as {
      reason_code: string;
      original: string;
    };
    const original = Buffer.from(letter.original, "base64").toString("utf8");
    const id = /"record_id":"([^"]+)"/.exec(original)?.[1] ?? `(no record_id) ${original.slice(0, 80)}`;
    const reasons = got.get(id) ?? new Set<string>();
    reasons.add(letter.reason_code);
    got.set(id, reasons);
  });
  const missingLetters = [...expected.keys()].filter((id) => !got.has(id));
  const wrongReason = [...expected].filter(([id, reason]) => {
    const reasons = got.get(id);
    return reasons !== undefined && (reasons.size !== 1 || !reasons.has(reason));
  });
  const unexpected = [...got.keys()].filter((id) => !expected.has(id));
  checks.push({
    name: "dead letters = hostile records",
    ok: missingLetters.length + wrongReason.length + unexpected.length === 0,
    detail: `${expected.size} expected, ${got.size} dead-lettered (${letters} letters); missing ${missingLetters.length}, wrong reason ${wrongReason.length}, unexpected ${unexpected.length}`,
    evidence: [
      ...missingLetters.slice(0, 5),
      ...wrongReason
        .slice(0, 5)
        .map(([id, reason]) => `${id}: expected ${reason}, got ${[...(got.get(id) ?? [])]}`),
      ...unexpected.slice(0, 5).map((id) => `${id}: ${[...(got.get(id) ?? [])]}`),
    ],
  });

  logger.info("check 5: the compacted budget-state topic against every account's final state");
  const latest = new Map<string, string>();
  await readWhole(kafka, config.AGENTMETER_STATE_TOPIC, (_partition, message) => {
    if (message.key !== null && message.value !== null)
      latest.set(message.key.toString("utf8"), message.value.toString("utf8"));
  });
  const stateDiffs: string[] = [];
  let compared = 0;
  for (const [key, account] of Object.entries(state.accounts)) {
    compared++;
    const want = JSON.stringify(budgetStateOf(account), bigintReplacer);
    const have = latest.get(key);
    if (have === undefined) stateDiffs.push(`${key}: no budget state`);
    else if (have !== want) stateDiffs.push(`${key}: topic ${have} != final ${want}`);
  }
  for (const key of latest.keys())
    if (state.accounts[key] === undefined) stateDiffs.push(`${key}: no account`);
  checks.push({
    name: "budget states = final states",
    ok: stateDiffs.length === 0,
    detail: `${compared} accounts, ${latest.size} keys on the topic, ${stateDiffs.length} differing`,
    evidence: stateDiffs.slice(0, 5),
  });

  return {
    checks,
    audit: { counts: report.counts, summary: report.summary, differences: report.differences.slice(0, 50) },
    lost,
    doubled,
    topicMessages,
  };
}
