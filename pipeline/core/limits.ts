import type { CreditRecord, InputRecord } from "../../schemas/index.ts";
import { epochMs, INT64_MAX } from "../../schemas/index.ts";
import type { AccountState, ChatState } from "./account.ts";
import type { BillingConfig } from "./billing-config.ts";
import { ownValue } from "./own.ts";
import type { AgentPrice } from "./pricebook.ts";

/**
 * The bounds a record must respect before it may change an account (pure: no clock, no I/O). Each
 * returns undefined when the record is within the bound, else the reason it is rejected with.
 */

/** Largest token counter value kept exact: token counters are JS numbers. */
export const MAX_TOKEN_COUNTER = Number.MAX_SAFE_INTEGER;

function isoOrMs(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? new Date(ms).toISOString() : `${ms} ms`;
}

/**
 * The event times the analytics store can bucket: ClickHouse's DateTime, which the rollups' minute and
 * hour buckets are (sinks/clickhouse/rollups.ts), holds 1970-01-01 to 2106-02-07T06:28:15Z, and a time
 * outside wraps around (1969-12-31 lands in 2106), so a rollup would count it in a month its raw row is
 * not in.
 */
export const MIN_EVENT_MS = 0;
export const MAX_EVENT_MS = 4_294_967_295_999;

/**
 * A record's times (occurred_at; a usage record's started_at and ended_at too, which become its chat's
 * and session's; a hold's expires_at) outside MIN_EVENT_MS..MAX_EVENT_MS: RECORD_OUT_OF_RANGE, with the
 * field (the SDK names it). The Kafka log time bounds only how far from it the event may be, and a
 * producer sets the log time.
 */
export function eventTimeOutOfRange(record: InputRecord, occurredMs: number): OutOfRange | undefined {
  if (!(occurredMs >= MIN_EVENT_MS && occurredMs <= MAX_EVENT_MS))
    return outsideReason("occurred_at", record.occurred_at);
  // A hold expires when event time passes its expires_at: past the range, no record could ever pass it,
  // and the tokens would stay held for good.
  if (record.type === "hold" && !storableTime(record.expires_at))
    return outsideReason("expires_at", record.expires_at);
  if (record.type !== "usage") return undefined;
  if (record.started_at !== undefined && !storableTime(record.started_at))
    return outsideReason("started_at", record.started_at);
  if (record.ended_at !== undefined && !storableTime(record.ended_at))
    return outsideReason("ended_at", record.ended_at);
  return undefined;
}

export type OutOfRange = { field: string; reason: string };

function outsideReason(field: string, value: string): OutOfRange {
  return {
    field,
    reason: `${field} ${value} is outside ${isoOrMs(MIN_EVENT_MS)}..${isoOrMs(MAX_EVENT_MS)}, the event times the analytics store can hold`,
  };
}

/**
 * Whether an ISO time the schema accepted lies in MIN_EVENT_MS..MAX_EVENT_MS. A year from 1971 to 2105
 * does whatever its zone offset (under a day), read from its four digits: no parse, and epochMs' cache of
 * the last time parsed (the record's occurred_at, asked for again by the rules) is left alone.
 */
function storableTime(text: string): boolean {
  const year =
    (text.charCodeAt(0) - 48) * 1000 +
    (text.charCodeAt(1) - 48) * 100 +
    (text.charCodeAt(2) - 48) * 10 +
    (text.charCodeAt(3) - 48);
  if (year > 1970 && year < 2106) return true;
  const ms = epochMs(text);
  return ms >= MIN_EVENT_MS && ms <= MAX_EVENT_MS;
}

/**
 * Event time against the Kafka record's log timestamp (it is in the log, so a replay decides the
 * same): more than `max_ahead_seconds` after it or more than `max_behind_seconds` before it is
 * RECORD_TIME_SKEW. Without a log time (compute on a file) there is nothing to check.
 */
export function timeSkewReason(
  occurredAt: string,
  occurredMs: number,
  logTimeMs: number | undefined,
  config: BillingConfig,
): string | undefined {
  if (logTimeMs === undefined || !Number.isFinite(logTimeMs)) return undefined;
  // Kafka's "no timestamp" (-1): not read as "no log time", which would let any producer skip this check
  // and date a record far ahead (every later record of its account would then be too late).
  if (logTimeMs < 0)
    return `the record's Kafka timestamp is ${logTimeMs} (none): the producer must set one (CreateTime), or the topic must use LogAppendTime`;
  const { max_ahead_seconds: ahead, max_behind_seconds: behind } = config.event_time;
  const diffMs = occurredMs - logTimeMs;
  if (diffMs > ahead * 1000) {
    return `occurred_at ${occurredAt} is ${diffMs / 1000}s after the record's log time ${isoOrMs(logTimeMs)}; the bound is ${ahead}s ahead (event_time.max_ahead_seconds)`;
  }
  if (-diffMs > behind * 1000) {
    return `occurred_at ${occurredAt} is ${-diffMs / 1000}s before the record's log time ${isoOrMs(logTimeMs)}; the bound is ${behind}s behind (event_time.max_behind_seconds)`;
  }
  return undefined;
}

/**
 * An app has one creator. A creator pinned in the config (`apps`) rules every record of the app
 * (app_usage and platform), first records included; otherwise, unless `unpinned_apps` is "reject" (an
 * unlisted app's end-user records are refused), an end user's account binds the creator its first
 * record named, and a later record naming another is RECORD_CREATOR_MISMATCH.
 */
export function creatorMismatchReason(
  account: AccountState | undefined,
  record: InputRecord,
  config: BillingConfig,
): string | undefined {
  const pinned = ownValue(config.apps, record.enterprise_id)?.creator;
  if (pinned !== undefined && record.mozaiks_user_id !== pinned) {
    return `app ${record.enterprise_id} has creator ${pinned} (billing config apps), the record names ${record.mozaiks_user_id}`;
  }
  if (pinned === undefined && config.unpinned_apps === "reject" && record.level === "app_usage") {
    return `app ${record.enterprise_id} has no creator in the billing config (apps), and unpinned_apps is "reject"`;
  }
  if (
    account !== undefined &&
    account.level === "app_usage" &&
    account.mozaiks_user_id !== record.mozaiks_user_id
  ) {
    return `app ${record.enterprise_id}'s creator on account ${account.account_key} is ${account.mozaiks_user_id} (bound by the account's first record), the record names ${record.mozaiks_user_id}`;
  }
  return undefined;
}

type Check = { counter: string; value: bigint; limit: bigint };

function tokens(counter: string, current: number, add: number): Check {
  return { counter, value: BigInt(current) + BigInt(add), limit: BigInt(MAX_TOKEN_COUNTER) };
}

function micros(counter: string, current: bigint, add: bigint): Check {
  return { counter, value: current + add, limit: INT64_MAX };
}

function firstOver(checks: readonly Check[]): string | undefined {
  for (const check of checks) {
    if (check.value > check.limit) {
      const what =
        check.limit === INT64_MAX ? "int64, what the stores hold" : "2^53-1, exact in a token counter";
      return `${check.counter} would be ${check.value}, past ${check.limit} (${what})`;
    }
  }
  return undefined;
}

/** What a usage record would add, computed before anything is mutated. */
export type UsageDelta = {
  tokens_used: number;
  trial_tokens: number;
  paid_tokens: number;
  cost_micros: bigint;
  billed_micros: bigint;
  creator_share_micros: bigint;
  platform_fee_micros: bigint;
};

/**
 * Whether `current + add` passes 2^53-1, exactly, for the non-negative safe integers token counters
 * hold: `MAX - current` is exact, so no sum is ever rounded.
 */
function tokensOver(current: number, add: number): boolean {
  return add > MAX_TOKEN_COUNTER - current;
}

/** 2^62: two micros amounts below it sum below int64's bound. */
const HALF_INT64 = 4_611_686_018_427_387_904n;

/**
 * Whether `current + add` passes int64. Both below 2^62 (every real amount) is decided by two
 * comparisons, which allocate nothing, where a bigint sum would allocate one; exact either way.
 */
function microsOver(current: bigint, add: bigint): boolean {
  if (current < HALF_INT64 && add < HALF_INT64) return false;
  return current + add > INT64_MAX;
}

/**
 * The common case, decided without building the checks: every counter stays within its bound. Exact
 * (see tokensOver; micros are bigint); when it says no, usageRangeReason's full pass names the counter.
 */
function usageWithinRange(
  account: AccountState,
  chat: ChatState | undefined,
  agents: Readonly<Record<string, AgentPrice>>,
  delta: UsageDelta,
): boolean {
  if (
    tokensOver(account.tokens_used, delta.tokens_used) ||
    tokensOver(account.trial_used_tokens, delta.trial_tokens) ||
    tokensOver(account.paid_used_tokens, delta.paid_tokens) ||
    microsOver(account.cost_micros, delta.cost_micros) ||
    microsOver(account.billed_micros, delta.billed_micros) ||
    microsOver(account.creator_share_micros, delta.creator_share_micros) ||
    microsOver(account.platform_fee_micros, delta.platform_fee_micros) ||
    tokensOver(chat?.total_tokens ?? 0, delta.tokens_used) ||
    microsOver(chat?.cost_micros ?? 0n, delta.cost_micros) ||
    microsOver(chat?.billed_micros ?? 0n, delta.billed_micros)
  ) {
    return false;
  }
  for (const name in agents) {
    if (!Object.hasOwn(agents, name)) continue;
    const agent = agents[name]!;
    const totals = chat === undefined ? undefined : ownValue(chat.agents, name);
    if (
      tokensOver(totals?.prompt_tokens ?? 0, agent.prompt_tokens) ||
      tokensOver(totals?.completion_tokens ?? 0, agent.completion_tokens) ||
      tokensOver(totals?.message_count ?? 0, agent.message_count ?? 0) ||
      (totals?.response_time_ms ?? 0) + (agent.response_time_ms ?? 0) > MAX_TOKEN_COUNTER
    ) {
      return false;
    }
  }
  return true;
}

/** RECORD_OUT_OF_RANGE for usage: any account, chat or agent counter past 2^53-1 (tokens) or int64 (micros). */
export function usageRangeReason(
  account: AccountState,
  chat: ChatState | undefined,
  agents: Readonly<Record<string, AgentPrice>>,
  delta: UsageDelta,
): string | undefined {
  if (usageWithinRange(account, chat, agents, delta)) return undefined;
  const checks: Check[] = [
    tokens("tokens_used", account.tokens_used, delta.tokens_used),
    tokens("trial_used_tokens", account.trial_used_tokens, delta.trial_tokens),
    tokens("paid_used_tokens", account.paid_used_tokens, delta.paid_tokens),
    micros("cost_micros", account.cost_micros, delta.cost_micros),
    micros("billed_micros", account.billed_micros, delta.billed_micros),
    micros("creator_share_micros", account.creator_share_micros, delta.creator_share_micros),
    micros("platform_fee_micros", account.platform_fee_micros, delta.platform_fee_micros),
    tokens("chat total_tokens", chat?.total_tokens ?? 0, delta.tokens_used),
    micros("chat cost_micros", chat?.cost_micros ?? 0n, delta.cost_micros),
    micros("chat billed_micros", chat?.billed_micros ?? 0n, delta.billed_micros),
  ];
  for (const [name, agent] of Object.entries(agents)) {
    const totals = chat === undefined ? undefined : ownValue(chat.agents, name);
    checks.push(
      tokens(`chat agent ${name} prompt_tokens`, totals?.prompt_tokens ?? 0, agent.prompt_tokens),
      tokens(`chat agent ${name} completion_tokens`, totals?.completion_tokens ?? 0, agent.completion_tokens),
      tokens(`chat agent ${name} message_count`, totals?.message_count ?? 0, agent.message_count ?? 0),
    );
    if ((totals?.response_time_ms ?? 0) + (agent.response_time_ms ?? 0) > MAX_TOKEN_COUNTER) {
      return `chat agent ${name} response_time_ms would pass ${MAX_TOKEN_COUNTER}`;
    }
  }
  return firstOver(checks);
}

/**
 * RECORD_OUT_OF_RANGE for credits: credited tokens, and allowance + credits (the capacity that
 * balances and thresholds derive from), past 2^53-1; paid_amount_micros past int64.
 */
export function creditRangeReason(account: AccountState, record: CreditRecord): string | undefined {
  const budgetSet = record.kind === "budget_set";
  const added = budgetSet || record.kind === "grant" ? 0 : record.tokens;
  const allowance = budgetSet ? record.tokens : account.allowance_tokens;
  const credited = BigInt(account.credited_tokens) + BigInt(added);
  // Dated grants are capacity too (every grant held, effective or not, and the new one).
  let granted = BigInt(record.kind === "grant" && added === 0 ? record.tokens : 0);
  if (account.grants !== undefined)
    for (const id in account.grants) granted += BigInt(account.grants[id]!.tokens);
  return firstOver([
    tokens("credited_tokens", account.credited_tokens, added),
    {
      counter:
        granted === 0n
          ? "allowance_tokens + credited_tokens"
          : "allowance_tokens + credited_tokens + grant tokens",
      value: BigInt(allowance) + credited + granted,
      limit: BigInt(MAX_TOKEN_COUNTER),
    },
    micros(
      "paid_amount_micros",
      account.paid_amount_micros,
      record.kind === "top_up" ? (record.amount_micros ?? 0n) : 0n,
    ),
  ]);
}
