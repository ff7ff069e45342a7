import { accountKeyOf, decodeTopicRecord, type TopicRecord } from "../../schemas/index.ts";
import { parseTickKey } from "../../schemas/keys.ts";
import {
  authorizeRecord,
  type CreditAuthorization,
  type HeaderValue,
  SIGNATURE_HEADER,
  verifyRecordSignature,
} from "../auth/signature.ts";
import type { ErrorCode } from "../errors.ts";
import { isKeyPartition, partitionForKey } from "./partitioning.ts";

/** A Kafka message as admission needs it (kafkajs' KafkaMessage, narrowed). */
export interface InputMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  /** The broker's or producer's timestamp (epoch ms as a string): in the log, so a replay sees the same. */
  timestamp?: string;
  headers?: Record<string, HeaderValue>;
}

/** What decides whether a message may reach the billing core. The processor and the audit use the same. */
export interface AdmissionRules {
  maxRecordBytes: number;
  /**
   * Every partition count the input topic has had (a record may sit on its key's murmur2 partition under
   * any of them); undefined skips the check (an audit that could not read them).
   */
  partitionCounts: readonly number[] | undefined;
  creditPolicy: CreditAuthorization;
}

export type Admission =
  | { ok: true; record: TopicRecord; key: string; logTimeMs: number | undefined }
  | { ok: false; code: ErrorCode; reason: string };

/**
 * The gate in front of the billing core, in the order the processor dead-letters: bytes that do not
 * decode to a valid record; a key other than the record's account key (per-account order rests on the
 * key); a partition other than the key's; an operator record without a valid signature. A replay or an
 * audit that admits the same messages applies the same records.
 */
export function admitMessage(message: InputMessage, partition: number, rules: AdmissionRules): Admission {
  if (message.value === null) return { ok: false, code: "RECORD_NOT_JSON", reason: "message has no value" };
  const decoded = decodeTopicRecord(message.value, { maxBytes: rules.maxRecordBytes });
  if (!decoded.ok) return { ok: false, code: decoded.code, reason: decoded.reason };
  const record = decoded.record;
  if (record.type === "tick") return admitTick(message, record, partition, rules);
  const key = accountKeyOf(record);
  if (message.key === null || message.key.toString("utf8") !== key) {
    const got = message.key === null ? "no key" : `key ${JSON.stringify(message.key.toString("utf8"))}`;
    return { ok: false, code: "RECORD_KEY_MISMATCH", reason: `${got}, expected ${key}` };
  }
  const counts = rules.partitionCounts;
  if (counts !== undefined && counts.length > 0 && !isKeyPartition(key, partition, counts)) {
    const count = counts[counts.length - 1]!;
    return {
      ok: false,
      code: "RECORD_WRONG_PARTITION",
      reason: `key ${key} belongs on partition ${partitionForKey(key, count)} of ${count} under murmur2, not ${partition}: produce with the murmur2 partitioner (librdkafka: partitioner=murmur2_random)`,
    };
  }
  const verdict = authorizeRecord(rules.creditPolicy, record, message.value, message.headers);
  if (!verdict.ok) return { ok: false, code: verdict.code, reason: verdict.message };
  return { ok: true, record, key, logTimeMs: logTimeOf(message) };
}

function logTimeOf(message: InputMessage): number | undefined {
  const timestamp = message.timestamp === undefined ? Number.NaN : Number(message.timestamp);
  return Number.isFinite(timestamp) ? timestamp : undefined;
}

/**
 * A tick belongs to no account: its key is a tick key naming the partition it was written for, which
 * must be the one it sits on (and the one its record names), so a tick cannot advance event time on
 * another partition. Ticks expire holds, so where operator records must be signed, ticks must be too
 * (the processor signs its own).
 */
function admitTick(
  message: InputMessage,
  record: TopicRecord & { type: "tick" },
  partition: number,
  rules: AdmissionRules,
): Admission {
  const key = message.key?.toString("utf8");
  let named: number | undefined;
  try {
    named = key === undefined ? undefined : parseTickKey(key).partition;
  } catch {
    named = undefined;
  }
  if (key === undefined || named === undefined)
    return {
      ok: false,
      code: "RECORD_KEY_MISMATCH",
      reason: `tick with ${key === undefined ? "no key" : `key ${JSON.stringify(key)}`}, expected tick:{partition}:{salt}`,
    };
  const counts = rules.partitionCounts;
  const landed = counts === undefined || counts.length === 0 || isKeyPartition(key, partition, counts);
  if (named !== partition || record.partition !== partition || !landed)
    return {
      ok: false,
      code: "RECORD_WRONG_PARTITION",
      reason: `tick for partition ${record.partition} (key ${key}) found on partition ${partition}`,
    };
  if (rules.creditPolicy.required) {
    const check = verifyRecordSignature(
      rules.creditPolicy.secret,
      message.value!,
      message.headers?.[SIGNATURE_HEADER],
    );
    if (!check.ok)
      return {
        ok: false,
        code: "RECORD_UNAUTHORIZED",
        reason: `tick ${record.record_id} has no valid operator signature (${SIGNATURE_HEADER}: ${check.reason})`,
      };
  }
  return { ok: true, record, key, logTimeMs: logTimeOf(message) };
}
