/**
 * The soak's input: one deterministic stream of messages, the same for the soak (which needs to know what
 * it sent and what must be dead-lettered) and for every incarnation of the producer child (which resumes
 * it after a kill). Built on the simulate workload, with what a real fleet adds to it: re-sent duplicates,
 * hostile or malformed records, records late past the dedupe horizon, grants and budget changes.
 */

import { generateWorkload, prng } from "../pipeline/simulate/workload.ts";
import type { ErrorCode } from "../schemas/errors.ts";
import { accountKeyOf, type InputRecordJson } from "../schemas/index.ts";

export const FAULT_KINDS = [
  "processor-kill",
  "processor-term",
  "processor-join",
  "broker-kill",
  "mongo-kill",
  "postgres-restart",
  "mongo-stall",
  "clickhouse-down",
  "producer-kill",
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

/** Everything a run depends on: written to the run's directory so a seed can be re-run exactly. */
export interface SoakPlan {
  runId: string;
  seed: number;
  /** Messages sent in all, duplicates, hostile and late records included. */
  records: number;
  accounts: number;
  apps: number;
  usersPerApp: number;
  durationS: number;
  brokers: 1 | 3;
  faults: FaultKind[];
  /** Epoch ms the producer paces from: message `seq` is due at t0 + seq / rate. */
  t0: number;
  startAt: string;
  stepMs: number;
  /** Event time of the late records: more than the 7-day dedupe horizon before any account's first record. */
  lateAt: string;
  /** Event time of the skewed records: far ahead of any log time of the run. */
  skewAt: string;
}

export interface StreamItem {
  seq: number;
  key: string;
  value: string;
  recordId: string;
  kind: "valid" | "duplicate" | "hostile" | "late";
  /** The dead-letter reason the processor must give it; undefined for records that must be billed. */
  expect?: ErrorCode;
}

const DAY = 86_400_000;

/** Event times of the run lie in the day before it starts, so none is ahead of its log time. */
export function eventTimes(
  t0: number,
  records: number,
): Pick<SoakPlan, "startAt" | "stepMs" | "lateAt" | "skewAt"> {
  const start = t0 - DAY - 3_600_000;
  return {
    startAt: new Date(start).toISOString(),
    stepMs: Math.max(1, Math.floor(DAY / Math.max(1, records))),
    lateAt: new Date(start - 8 * DAY).toISOString(),
    skewAt: new Date(t0 + 2 * DAY).toISOString(),
  };
}

/** Accounts split into apps of about a hundred end users (two apps per creator), between 2 and 200 apps. */
export function shapeOf(accounts: number): { apps: number; usersPerApp: number } {
  const apps = Math.min(200, Math.max(2, Math.ceil(accounts / 100)));
  return { apps, usersPerApp: Math.max(1, Math.ceil(accounts / apps)) };
}

const HOSTILE_KINDS = [
  "not-json",
  "negative",
  "computed-field",
  "key-mismatch",
  "unknown-model",
  "skew",
] as const;

function hostile(
  plan: SoakPlan,
  base: InputRecordJson,
  n: number,
  roll: number,
): { key: string; value: string; recordId: string; expect: ErrorCode } {
  const recordId = `${plan.runId}-hostile-${n}`;
  const key = accountKeyOf(base);
  // One in fifty is oversized: rare, because each costs 70 KB on the wire.
  if (roll < 0.02) {
    return {
      key,
      value: JSON.stringify({ ...base, record_id: recordId, workflow_name: "x".repeat(70_000) }),
      recordId,
      expect: "RECORD_TOO_LARGE",
    };
  }
  const kind = HOSTILE_KINDS[n % HOSTILE_KINDS.length]!;
  const usage =
    base.type === "usage"
      ? base
      : {
          type: "usage" as const,
          level: base.level,
          enterprise_id: base.enterprise_id,
          mozaiks_user_id: base.mozaiks_user_id,
          ...("platform_user_id" in base && base.platform_user_id !== undefined
            ? { platform_user_id: base.platform_user_id, user_id: base.platform_user_id }
            : { user_id: base.mozaiks_user_id }),
          workflow_type: "chat_interaction",
          workflow_name: "chat",
          session_id: `${plan.runId}-hostile`,
          chat_id: `${plan.runId}-hostile`,
          model: "gpt-4o",
          agent_usage: { CustomerAgent: { prompt_tokens: 10, completion_tokens: 10 } },
          occurred_at: base.occurred_at,
        };
  const record = { ...usage, record_id: recordId };
  switch (kind) {
    case "not-json":
      return {
        key,
        value: `{"type":"usage","record_id":"${recordId}",`,
        recordId,
        expect: "RECORD_NOT_JSON",
      };
    case "negative":
      return {
        key,
        value: JSON.stringify({
          ...record,
          agent_usage: { CustomerAgent: { prompt_tokens: -1, completion_tokens: 10 } },
        }),
        recordId,
        expect: "RECORD_INVALID",
      };
    case "computed-field":
      // Fields the processor computes are refused, never trusted.
      return { key, value: JSON.stringify({ ...record, cost: 0.45 }), recordId, expect: "RECORD_INVALID" };
    case "key-mismatch":
      return { key: `${key}:other`, value: JSON.stringify(record), recordId, expect: "RECORD_KEY_MISMATCH" };
    case "unknown-model":
      return {
        key,
        value: JSON.stringify({ ...record, model: "no-such-model-9" }),
        recordId,
        expect: "UNKNOWN_MODEL",
      };
    default:
      return {
        key,
        value: JSON.stringify({ ...record, occurred_at: plan.skewAt }),
        recordId,
        expect: "RECORD_TIME_SKEW",
      };
  }
}

/**
 * The stream, `plan.records` messages long. Shares (of workload records): about 5% re-sent later with the
 * same record_id, 1% followed by a hostile record, 0.2% by a late copy, 0.1% by a budget change; a tenth of
 * the top-ups become grants.
 */
export function* soakStream(plan: SoakPlan): Generator<StreamItem> {
  const random = prng(plan.seed ^ 0x5eed);
  const workload = generateWorkload({
    seed: plan.seed,
    // Generous: the extra messages come on top of the workload's, and the stream stops at plan.records.
    records: plan.records + 10,
    apps: plan.apps,
    usersPerApp: plan.usersPerApp,
    runId: plan.runId,
    idPrefix: "s",
    startAt: plan.startAt,
    stepMs: plan.stepMs,
  });
  const dueDuplicates = new Map<number, StreamItem[]>();
  let seq = 0;
  let hostileCount = 0;
  const emit = function* (item: Omit<StreamItem, "seq">): Generator<StreamItem> {
    if (seq >= plan.records) return;
    yield { ...item, seq: seq++ };
  };
  for (let record of workload) {
    if (seq >= plan.records) return;
    for (const due of dueDuplicates.get(seq) ?? []) yield* emit(due);
    dueDuplicates.delete(seq);
    if (record.type === "credit" && record.kind === "top_up" && random() < 0.1) {
      const { amount_micros: _paid, ...rest } = record;
      record = { ...rest, kind: "grant" };
    }
    const value = JSON.stringify(record);
    const key = accountKeyOf(record);
    yield* emit({ key, value, recordId: record.record_id, kind: "valid" });
    const roll = random();
    if (roll < 0.05) {
      const at = seq + 20 + Math.floor(random() * 2_000);
      const list = dueDuplicates.get(at) ?? [];
      list.push({ seq: -1, key, value, recordId: record.record_id, kind: "duplicate" });
      dueDuplicates.set(at, list);
    } else if (roll < 0.06) {
      const bad = hostile(plan, record, hostileCount++, random());
      yield* emit({ ...bad, kind: "hostile" });
    } else if (roll < 0.062 && record.type === "usage") {
      // The account has a record on the topic before this copy: it is past the horizon for certain.
      const late = { ...record, record_id: `${record.record_id}-late`, occurred_at: plan.lateAt };
      yield* emit({
        key,
        value: JSON.stringify(late),
        recordId: late.record_id,
        kind: "late",
        expect: "RECORD_TOO_LATE",
      });
    } else if (roll < 0.063) {
      const ids =
        record.level === "platform"
          ? {
              level: "platform" as const,
              enterprise_id: record.enterprise_id,
              mozaiks_user_id: record.mozaiks_user_id,
            }
          : {
              level: "app_usage" as const,
              enterprise_id: record.enterprise_id,
              mozaiks_user_id: record.mozaiks_user_id,
              platform_user_id: (record as { platform_user_id: string }).platform_user_id,
            };
      const budget: InputRecordJson = {
        type: "credit",
        kind: "budget_set",
        record_id: `${record.record_id}-budget`,
        ...ids,
        tokens: 5_000 + Math.floor(random() * 20) * 1_000,
        occurred_at: record.occurred_at,
      };
      yield* emit({ key, value: JSON.stringify(budget), recordId: budget.record_id, kind: "valid" });
    }
  }
}
