import { LEVELS } from "./common.ts";
import { CREDIT_KINDS, creditRecordSchema } from "./credit-record.ts";
import { holdRecordSchema, releaseRecordSchema } from "./hold-record.ts";
import {
  ENTERPRISE_ID_PATTERN,
  MODEL_PATTERN,
  NAME_PATTERN,
  OPAQUE_ID_PATTERN,
  REASON_PATTERN,
  USER_ID_PATTERN,
} from "./ids.ts";
import type { InputRecord } from "./input-record.ts";
import { INT64_MAX, MAX_TOKENS_PER_FIELD } from "./money.ts";
import { SESSION_EVENTS, sessionRecordSchema } from "./session-record.ts";
import { epochMs, isoDateTimeSchema } from "./time.ts";
import {
  agentUsageSchema,
  CONNECTION_STATES,
  MAX_AGENT_MESSAGE_COUNT,
  MAX_AGENT_RESPONSE_TIME_MS,
  MAX_AGENTS_PER_RECORD,
  RESERVED_AGENT_NAMES,
  usageRecordSchema,
} from "./usage-record.ts";

/**
 * A fast path in front of the zod schemas, for parsed JSON only (decodeRecord). The zod schemas stay the
 * single source of the rules: this either returns exactly the record `inputRecordSchema.parse` returns
 * (same fields, same key order, same defaults and bigint conversions) or `undefined`, meaning "let zod
 * decide". It never rejects anything itself, so every refusal still comes from zod, with zod's code,
 * message and path. What it does not know, it hands to zod: a field a schema gains that has no check
 * here turns the fast path off for that record type (the key sets are compared with the schemas' shapes
 * when this module loads), and an unknown key, a wrong type, a value out of range or any rule broken
 * falls through to zod. test/unit/fast-record.test.ts checks on a generated corpus of valid and broken
 * records that it accepts exactly what zod accepts and returns what zod returns.
 *
 * Why: zod's generic object, record, union and refinement machinery cost about twenty times a JSON.parse
 * per record (npm run bench:core); these checks are the same regular expressions and bounds, inline.
 */

/** The value a field takes, or NO when the fast path cannot vouch for it. */
const NO: unique symbol = Symbol("no");
type Check = (value: unknown) => unknown;

const DATETIME_PATTERN = (isoDateTimeSchema._zod.def as { pattern?: RegExp }).pattern;
const MICROS_STRING = /^[0-9]{1,30}$/;

function matching(pattern: RegExp): Check {
  return (value) => (typeof value === "string" && pattern.test(value) ? value : NO);
}

function oneOf(values: readonly string[]): Check {
  const set = new Set<unknown>(values);
  return (value) => (set.has(value) ? value : NO);
}

function tokenCount(value: unknown): unknown {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= MAX_TOKENS_PER_FIELD
    ? value
    : NO;
}

function micros(value: unknown): unknown {
  if (typeof value === "string") {
    if (!MICROS_STRING.test(value)) return NO;
    const amount = BigInt(value);
    return amount <= INT64_MAX ? amount : NO;
  }
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? BigInt(value) : NO;
}

const isoDateTime: Check = DATETIME_PATTERN instanceof RegExp ? matching(DATETIME_PATTERN) : () => NO;

/** The checks of one agent's usage, by field of agentUsageSchema. */
const AGENT_CHECKS: Record<string, Check> = {
  prompt_tokens: tokenCount,
  completion_tokens: tokenCount,
  cached_prompt_tokens: tokenCount,
  reasoning_tokens: tokenCount,
  audio_tokens: tokenCount,
  model: matching(MODEL_PATTERN),
  response_time_ms: (value) =>
    typeof value === "number" && Number.isFinite(value) && value >= 0 && value <= MAX_AGENT_RESPONSE_TIME_MS
      ? value
      : NO,
  message_count: (value) =>
    typeof value === "number" && Number.isSafeInteger(value) && value >= 0 && value <= MAX_AGENT_MESSAGE_COUNT
      ? value
      : NO,
};

/** The checks of every field of the record schemas (a field means the same in each, but for HOLD_CHECKS). */
const FIELD_CHECKS: Record<string, Check> = {
  schema_version: (value) => (value === 1 ? value : NO),
  record_id: matching(OPAQUE_ID_PATTERN),
  level: oneOf(LEVELS),
  enterprise_id: matching(ENTERPRISE_ID_PATTERN),
  mozaiks_user_id: matching(USER_ID_PATTERN),
  platform_user_id: matching(USER_ID_PATTERN),
  user_id: matching(USER_ID_PATTERN),
  workflow_type: matching(NAME_PATTERN),
  workflow_name: matching(NAME_PATTERN),
  session_id: matching(OPAQUE_ID_PATTERN),
  chat_id: matching(OPAQUE_ID_PATTERN),
  model: matching(MODEL_PATTERN),
  agent_usage: agentUsageMap,
  occurred_at: isoDateTime,
  started_at: isoDateTime,
  ended_at: isoDateTime,
  connection_state: oneOf(CONNECTION_STATES),
  kind: oneOf(CREDIT_KINDS),
  tokens: tokenCount,
  amount_micros: micros,
  event: oneOf(SESSION_EVENTS),
  pause_reason: matching(REASON_PATTERN),
  hold_id: matching(OPAQUE_ID_PATTERN),
  // Dated grant fields: any value hands the record to zod (fastInputRecord), whose refinements decide.
  priority: () => NO,
  effective_at: () => NO,
  expires_at: () => NO,
};

/** One field of a schema's shape: its check, and what zod gives when the field is absent. */
type Field = { key: string; check: Check; absent: { ok: boolean; value: unknown } };
type Plan = { fields: Field[]; keys: ReadonlySet<string> } | undefined;

type ShapeSchema = {
  shape: Record<string, { safeParse: (value: unknown) => { success: boolean; data?: unknown } }>;
};

/**
 * The fields of a zod object schema in its shape's order (zod's output order), each with its check here
 * and its meaning when absent, asked of zod itself (optional: absent stays absent; a default: zod's
 * default). Undefined, turning the fast path off, if a field has no check here.
 */
function planOf(schema: ShapeSchema, checks: Record<string, Check>, literal?: [string, string]): Plan {
  const fields: Field[] = [];
  for (const [key, field] of Object.entries(schema.shape)) {
    const check =
      literal !== undefined && key === literal[0]
        ? (value: unknown) => (value === literal[1] ? value : NO)
        : Object.hasOwn(checks, key)
          ? checks[key]
          : undefined;
    if (check === undefined) return undefined;
    const absent = field.safeParse(undefined);
    fields.push({ key, check, absent: { ok: absent.success, value: absent.data } });
  }
  return { fields, keys: new Set(fields.map((field) => field.key)) };
}

/**
 * A hold's two fields that mean something else on a credit: its size is at least one token
 * (holdTokensSchema), and its expiry is a plain date (whether it is after occurred_at is the
 * refinement fastInputRecord checks); a credit's dated-grant expiry is zod's to decide.
 */
const HOLD_CHECKS: Record<string, Check> = {
  ...FIELD_CHECKS,
  tokens: (value) => (tokenCount(value) !== NO && (value as number) >= 1 ? value : NO),
  expires_at: isoDateTime,
};

const PLANS: Record<string, Plan> = {
  usage: planOf(usageRecordSchema as unknown as ShapeSchema, FIELD_CHECKS, ["type", "usage"]),
  credit: planOf(creditRecordSchema as unknown as ShapeSchema, FIELD_CHECKS, ["type", "credit"]),
  session: planOf(sessionRecordSchema as unknown as ShapeSchema, FIELD_CHECKS, ["type", "session"]),
  hold: planOf(holdRecordSchema as unknown as ShapeSchema, HOLD_CHECKS, ["type", "hold"]),
  release: planOf(releaseRecordSchema as unknown as ShapeSchema, FIELD_CHECKS, ["type", "release"]),
};
const AGENT_PLAN: Plan = planOf(agentUsageSchema as unknown as ShapeSchema, AGENT_CHECKS);

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Whether `input` is already the object zod would return: its keys are fields of the shape in the
 * shape's order, every field it lacks is optional without a default, and every value passes its check
 * unchanged (no string turned into a bigint, no nested copy). Then no copy is needed. JSON from our own
 * producers is written in shape order, so this is the common case, and a copy of every record (and of
 * every agent's usage) was about a tenth of the decoder's time.
 */
function isAsZodReturns(input: Record<string, unknown>, plan: NonNullable<Plan>): boolean {
  const fields = plan.fields;
  let next = 0;
  for (const key in input) {
    while (next < fields.length && fields[next]!.key !== key) {
      if (!absentAsIs(fields[next]!)) return false;
      next++;
    }
    // An unknown or repeated key, or one out of the shape's order; or an inherited one (zod decides).
    if (next === fields.length || !Object.hasOwn(input, key)) return false;
    const value = input[key];
    if (value === undefined || fields[next]!.check(value) !== value) return false;
    next++;
  }
  for (; next < fields.length; next++) if (!absentAsIs(fields[next]!)) return false;
  return true;
}

/** An absent field that zod leaves absent (optional, no default). */
function absentAsIs(field: Field): boolean {
  return field.absent.ok && field.absent.value === undefined;
}

/** A strict object by its plan, in shape order; NO if anything is off. The input itself when it is that already. */
function objectOf(
  input: Record<string, unknown>,
  plan: NonNullable<Plan>,
): Record<string, unknown> | typeof NO {
  if (isAsZodReturns(input, plan)) return input;
  // Every enumerable key, own or inherited, must be a field of the shape (an inherited one: zod decides).
  for (const key in input) if (!plan.keys.has(key) || !Object.hasOwn(input, key)) return NO;
  const output: Record<string, unknown> = {};
  const fields = plan.fields;
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    // Read as zod reads it: a plain property read.
    const value = input[field.key];
    if (value === undefined) {
      if (!field.absent.ok) return NO;
      if (field.absent.value !== undefined) output[field.key] = field.absent.value;
      continue;
    }
    const checked = field.check(value);
    if (checked === NO) return NO;
    output[field.key] = checked;
  }
  return output;
}

/** agent_usage: 1 to MAX_AGENTS_PER_RECORD agents by name (none reserved), each a strict agent usage. */
function agentUsageMap(value: unknown): unknown {
  if (AGENT_PLAN === undefined || !isPlainObject(value)) return NO;
  const output: Record<string, unknown> = {};
  let count = 0;
  // The map itself when every agent's usage is returned as it is (isAsZodReturns): nothing to copy.
  let same = true;
  for (const name in value) {
    if (++count > MAX_AGENTS_PER_RECORD || !Object.hasOwn(value, name)) return NO;
    if (RESERVED_AGENT_NAMES.has(name) || !NAME_PATTERN.test(name)) return NO;
    const agent = value[name];
    if (!isPlainObject(agent)) return NO;
    const checked = objectOf(agent, AGENT_PLAN);
    if (checked === NO) return NO;
    same &&= checked === agent;
    output[name] = checked;
  }
  if (count < 1) return NO;
  return same ? value : output;
}

/**
 * The record zod would return for this parsed JSON, or undefined when the fast path cannot tell (then
 * zod decides, and reports). Only for values straight from JSON.parse.
 */
export function fastInputRecord(json: unknown): InputRecord | undefined {
  if (!isPlainObject(json)) return undefined;
  const type = json.type;
  const plan = typeof type === "string" && Object.hasOwn(PLANS, type) ? PLANS[type] : undefined;
  if (plan === undefined) return undefined;
  const record = objectOf(json, plan);
  if (record === NO) return undefined;
  // The refinements: platform_user_id with the level; pause_reason only on a pause; a hold expires
  // after it is made.
  const hasUser = record.platform_user_id !== undefined;
  if (record.level === "app_usage" ? !hasUser : hasUser) return undefined;
  if (record.pause_reason !== undefined && record.event !== "pause") return undefined;
  if (type === "hold" && !(epochMs(record.expires_at as string) > epochMs(record.occurred_at as string)))
    return undefined;
  return record as InputRecord;
}

/** Whether the fast path is on for each record type (false: a schema field it has no check for). */
export const FAST_RECORD_TYPES: Readonly<Record<string, boolean>> = Object.fromEntries(
  Object.entries(PLANS).map(([type, plan]) => [
    type,
    plan !== undefined &&
      DATETIME_PATTERN instanceof RegExp &&
      (type !== "usage" || AGENT_PLAN !== undefined),
  ]),
);
