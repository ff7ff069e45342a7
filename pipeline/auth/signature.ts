import { createHmac, timingSafeEqual } from "node:crypto";
import { isOperatorRecord } from "../../schemas/input-record.ts";

/**
 * Who may send what. Money-bearing records (credit records: `top_up`, `grant`, `budget_set`) come from
 * the operator's systems, never from agent runtimes. They share the input topic with usage (one topic
 * keeps each account's records in one order, so a replay decides the same), and carry proof of origin
 * in a Kafka header: an HMAC-SHA256 over the exact record bytes (the message value, as on the topic),
 * keyed with the operator secret (AGENTMETER_OPERATOR_SECRET), hex, after a key id:
 *
 *     agentmeter-signature: v1=3f9c…(64 hex digits)
 *
 * The key id names the scheme and leaves room for a rotation (v2=…) without a format change.
 */
export const SIGNATURE_HEADER = "agentmeter-signature";
const SIGNATURE_KEY_ID = "v1";
/** An HMAC-SHA256 key shorter than its block's half gives away strength; 32 bytes is the floor. */
export const OPERATOR_SECRET_MIN_BYTES = 32;

/** Why a signature was refused (the dead letter's detail; the code is RECORD_UNAUTHORIZED). */
export type SignatureFailure =
  /** No `agentmeter-signature` header on the record. */
  | "missing"
  /** The header appears more than once: which one counts would be ambiguous. */
  | "duplicate"
  /** Not `keyid=hex`, or the hex is not 64 digits. */
  | "malformed"
  /** A key id this processor does not know (only `v1`). */
  | "unknown_key_id"
  /** Well-formed, but not the HMAC of these bytes under this secret (tampered, or another secret). */
  | "mismatch";

export type SignatureCheck = { ok: true } | { ok: false; reason: SignatureFailure };

/** A header value as kafkajs hands it over: absent, one value, or several. */
export type HeaderValue = Buffer | string | readonly (Buffer | string)[] | undefined;

type Bytes = string | Uint8Array;

function asBuffer(bytes: Bytes): Buffer {
  return typeof bytes === "string" ? Buffer.from(bytes, "utf8") : Buffer.from(bytes);
}

function hmac(secret: Bytes, bytes: Bytes): Buffer {
  return createHmac("sha256", asBuffer(secret)).update(asBuffer(bytes)).digest();
}

/** The header value for `bytes` (a string is taken as its UTF-8 bytes, as kafkajs sends it). */
export function signRecord(secret: Bytes, bytes: Bytes): string {
  return `${SIGNATURE_KEY_ID}=${hmac(secret, bytes).toString("hex")}`;
}

/** Checks the header against the HMAC of exactly these bytes; the digests are compared in constant time. */
export function verifyRecordSignature(secret: Bytes, bytes: Bytes, headerValue: HeaderValue): SignatureCheck {
  let value: Buffer | string | undefined;
  if (Array.isArray(headerValue)) {
    if (headerValue.length > 1) return { ok: false, reason: "duplicate" };
    value = headerValue[0];
  } else {
    value = headerValue as Buffer | string | undefined;
  }
  if (value === undefined) return { ok: false, reason: "missing" };
  const text = typeof value === "string" ? value : value.toString("latin1");
  const match = /^([A-Za-z0-9]{1,8})=([0-9a-f]{64})$/.exec(text);
  if (match === null) return { ok: false, reason: "malformed" };
  if (match[1] !== SIGNATURE_KEY_ID) return { ok: false, reason: "unknown_key_id" };
  const expected = hmac(secret, bytes);
  const given = Buffer.from(match[2]!, "hex");
  return given.length === expected.length && timingSafeEqual(given, expected)
    ? { ok: true }
    : { ok: false, reason: "mismatch" };
}

/**
 * The processor's policy for credit records, from the configuration:
 * - secret set: every credit record must carry a valid signature; anything else is dead-lettered with
 *   RECORD_UNAUTHORIZED.
 * - secret unset: development mode, credit records are accepted unsigned; `warning` is the line the
 *   processor logs once at start.
 */
export type CreditAuthorization = { required: true; secret: string } | { required: false; warning: string };

export function creditAuthorization(config: {
  AGENTMETER_OPERATOR_SECRET?: string | undefined;
}): CreditAuthorization {
  const secret = config.AGENTMETER_OPERATOR_SECRET;
  if (secret !== undefined && secret !== "") return { required: true, secret };
  return {
    required: false,
    warning:
      "AGENTMETER_OPERATOR_SECRET is not set: credit records (top_up, grant, budget_set) and corrections (void, refund) are accepted unsigned, so any producer can mint tokens or reverse billing. Development only; production must set it (docs/security.md)",
  };
}

export type RecordAuthorization =
  | { ok: true }
  | { ok: false; code: "RECORD_UNAUTHORIZED"; reason: SignatureFailure; message: string };

/**
 * The whole check for one decoded record: records that are not the operator's pass; an operator record
 * passes unsigned in development mode, and with a valid signature over `bytes` (the message value
 * exactly as read from Kafka) otherwise.
 */
export function authorizeRecord(
  policy: CreditAuthorization,
  record: { type: string; record_id?: string },
  bytes: Bytes,
  headers: Readonly<Record<string, HeaderValue>> | undefined,
): RecordAuthorization {
  if (!policy.required || !isOperatorRecord(record)) return { ok: true };
  const check = verifyRecordSignature(policy.secret, bytes, headers?.[SIGNATURE_HEADER]);
  if (check.ok) return check;
  return {
    ok: false,
    code: "RECORD_UNAUTHORIZED",
    reason: check.reason,
    message: `${record.type} record ${record.record_id ?? "?"} has no valid operator signature (${SIGNATURE_HEADER}: ${check.reason})`,
  };
}
