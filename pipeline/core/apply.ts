import { AgentmeterError } from "../../schemas/errors.ts";
import type {
  AccountKey,
  InputRecord,
  Output,
  RejectionCode,
  TickRecord,
  TopicOutput,
  TopicRecord,
} from "../../schemas/index.ts";
import { accountKeyOf, epochMs, SCHEMA_VERSION } from "../../schemas/index.ts";
import { type AccountState, canContinue, cloneAccount, newAccount } from "./account.ts";
import { applyCredit } from "./apply-credit.ts";
import { applySession } from "./apply-session.ts";
import { applyUsage } from "./apply-usage.ts";
import type { BillingConfig } from "./billing-config.ts";
import { applyCorrection, correctionRefusal } from "./corrections.ts";
import { dedupeKey, isDuplicateRecord, remember, tooLateReason } from "./dedupe.ts";
import { advanceGrants, earliestGrantChange } from "./grants.ts";
import {
  decideHold,
  earliestHoldExpiry,
  expireHolds,
  holdClockMs,
  rejectedHoldDecision,
  releaseHold,
  settleHold,
} from "./holds.ts";
import { creatorMismatchReason, creditRangeReason, eventTimeOutOfRange, timeSkewReason } from "./limits.ts";
import { type OutputBase, outputBase } from "./output-base.ts";
import { copyMap, ownValue } from "./own.ts";
import { advancePeriod, nextPeriodBoundary } from "./periods.ts";
import { priceUsage } from "./pricebook.ts";
import { tokenTotals } from "./token-totals.ts";

/** All accounts, by account key. Plain data; untouched accounts are shared between states. */
export type BillingState = { accounts: Record<string, AccountState> };

/**
 * A record plus an opaque position (e.g. Kafka partition and offset) copied into its outputs, and the
 * Kafka record's log timestamp (epoch ms) when there is one: `occurred_at` is bounded against it
 * (config `event_time`, RECORD_TIME_SKEW). `compute` on a file has none and skips that check. `R` is
 * TopicRecord for a reader of the input topic, whose batches hold ticks too.
 */
export type SequencedRecord<S = unknown, R extends TopicRecord = InputRecord> = {
  record: R;
  seq?: S;
  logTimeMs?: number;
};
export type SequencedOutput<S = unknown> = Output & { seq?: S };
/** An output of a batch that may hold ticks: a rejected tick names no account. */
export type SequencedTopicOutput<S = unknown> = TopicOutput & { seq?: S };

export type AccountResult = {
  /** The account after the records; undefined only if there was none and nothing created it. */
  account: AccountState | undefined;
  outputs: Output[];
  /** False when every record was a duplicate or rejected: nothing to persist. */
  changed: boolean;
};

export function emptyState(): BillingState {
  return { accounts: {} };
}

/** A rejection: its output, and the account as it was. */
function rejected(
  account: AccountState | undefined,
  outputs: Output[],
  base: OutputBase,
  code: RejectionCode,
  reason: string,
  record: InputRecord,
  config: BillingConfig,
): { account: AccountState | undefined; changed: boolean } {
  outputs.push({ kind: "rejected", ...base, code, reason });
  // Whoever sent a hold waits for its decision: a rejected one is answered too (with the figures of
  // the account as it stands, or as it would start).
  if (record.type === "hold") {
    outputs.push(
      rejectedHoldDecision(account ?? newAccount(record, config), record, base, `${code}: ${reason}`),
    );
  }
  return { account, changed: false };
}

/**
 * What a record does first once it is known to apply, before its own effect: holds whose expiry its
 * event time passes end, dated grants start and end, the allowance period turns over. A function of its
 * own, not a closure per record (a closure costs an allocation, and tsx names each one).
 */
function advanceClocks(
  account: AccountState,
  eventMs: number,
  record: InputRecord,
  config: BillingConfig,
  outputs: Output[],
): void {
  expireHolds(account, eventMs, record, outputs);
  advanceGrants(account, eventMs, record, outputs);
  advancePeriod(account, config, eventMs, record, outputs, record.enterprise_id);
}

/**
 * Applies one record to an account the caller owns (already copied), pushing outputs in order.
 * Returns the account (created on first sight) and whether the record took effect.
 */
function applyInPlace(
  account: AccountState | undefined,
  record: InputRecord,
  config: BillingConfig,
  outputs: Output[],
  logTimeMs?: number,
  accountKey: AccountKey = accountKeyOf(record),
): { account: AccountState | undefined; changed: boolean } {
  const base = outputBase(record, accountKey);
  const occurredMs = epochMs(record.occurred_at);
  // Event time against the log time first: a record dated 9999 must not move the dedupe horizon (and
  // so must not make every later record of the account too late), duplicate or not.
  const skew = timeSkewReason(record.occurred_at, occurredMs, logTimeMs, config);
  if (skew !== undefined) return rejected(account, outputs, base, "RECORD_TIME_SKEW", skew, record, config);
  const outOfTime = eventTimeOutOfRange(record, occurredMs);
  if (outOfTime !== undefined)
    return rejected(account, outputs, base, "RECORD_OUT_OF_RANGE", outOfTime.reason, record, config);
  // Too-late is checked before duplicates: a too-late id may already be forgotten, and the answer
  // must not depend on when ids are swept.
  const late =
    account === undefined ? undefined : tooLateReason(account.dedupe, record.occurred_at, occurredMs, config);
  if (late !== undefined) return rejected(account, outputs, base, "RECORD_TOO_LATE", late, record, config);
  if (account !== undefined && isDuplicateRecord(account.dedupe, record, account.corrections?.usage)) {
    outputs.push({ kind: "duplicate_ignored", ...base, record_type: record.type });
    return { account, changed: false };
  }
  const creator = creatorMismatchReason(account, record, config);
  if (creator !== undefined)
    return rejected(account, outputs, base, "RECORD_CREATOR_MISMATCH", creator, record, config);

  // Range checks run on the (possibly new) account before anything is mutated; a rejected record
  // leaves `account` as it was (and creates none).
  const target = account ?? newAccount(record, config);
  // Holds whose expiry this record's event time passes end first, before the record's own effect and
  // outputs (a settle or release arriving after expiry finds the hold expired), but only once the
  // record is known to apply: a rejected record changes nothing.
  const eventMs = holdClockMs(target, record);
  const first = outputs.length;
  if (record.type === "usage") {
    const priced = priceUsage(record, config);
    if (!priced.ok) return rejected(account, outputs, base, priced.code, priced.reason, record, config);
    const outOfRange = applyUsage(target, record, priced, config, outputs, base, advanceClocks, eventMs);
    if (outOfRange !== undefined)
      return rejected(account, outputs, base, "RECORD_OUT_OF_RANGE", outOfRange, record, config);
    if (record.hold_id !== undefined) {
      settleHold(target, record.hold_id, tokenTotals(priced.agents).total_tokens, outputs, base);
    }
  } else if (record.type === "credit") {
    const outOfRange = creditRangeReason(target, record);
    if (outOfRange !== undefined)
      return rejected(account, outputs, base, "RECORD_OUT_OF_RANGE", outOfRange, record, config);
    advanceClocks(target, eventMs, record, config, outputs);
    applyCredit(target, record, config, outputs, base, eventMs);
  } else if (record.type === "session") {
    advanceClocks(target, eventMs, record, config, outputs);
    applySession(target, record, config, outputs, base);
  } else if (record.type === "hold") {
    advanceClocks(target, eventMs, record, config, outputs);
    decideHold(target, record, config, outputs, base, eventMs);
  } else if (record.type === "void" || record.type === "refund") {
    const refusal = correctionRefusal(target, record, occurredMs, config);
    if (refusal !== undefined)
      return rejected(account, outputs, base, refusal.code, refusal.reason, record, config);
    advanceClocks(target, eventMs, record, config, outputs);
    applyCorrection(target, record, config, outputs, base);
  } else {
    advanceClocks(target, eventMs, record, config, outputs);
    releaseHold(target, record, outputs, base);
  }
  if (!canContinue(target)) dropResumable(outputs, first);
  remember(target.dedupe, dedupeKey(record), occurredMs, config);
  target.last_event_at = record.occurred_at;
  return { account: target, changed: true };
}

/**
 * A record's clock advance (a new period, a grant that starts) can make paused chats resumable, and
 * its own effect (usage past what that gave) exhaust the account again: a chat is then not resumable
 * after the record, and a `resumable` event for it would have a runtime resume a chat the account
 * cannot pay for. The events are decided against the record's end state: the account cannot continue,
 * so none of its `resumable` events stands. Mutates `outputs` from `first` on.
 */
function dropResumable(outputs: Output[], first: number): void {
  let kept = first;
  for (let i = first; i < outputs.length; i++) {
    const output = outputs[i]!;
    if (output.kind === "budget_event" && output.event === "resumable") continue;
    outputs[kept++] = output;
  }
  outputs.length = kept;
}

function assertSameAccount(account: AccountState | undefined, record: InputRecord): void {
  const key = accountKeyOf(record);
  if (account !== undefined && account.account_key !== key) {
    throw new AgentmeterError(
      "RECORD_KEY_MISMATCH",
      `record ${record.record_id} belongs to account ${key}, not ${account.account_key}`,
    );
  }
}

/**
 * Applies an ordered run of records of ONE account (the processor's unit: one document). The input
 * account is not mutated (it is copied once). Throws RECORD_KEY_MISMATCH if a record is another
 * account's: that is a caller bug, not bad data.
 */
export function applyAccountRecords(
  account: AccountState | undefined,
  records: readonly InputRecord[],
  config: BillingConfig,
): AccountResult {
  let current = account === undefined ? undefined : cloneAccount(account);
  const outputs: Output[] = [];
  let changed = false;
  for (const record of records) {
    assertSameAccount(current, record);
    const result = applyInPlace(current, record, config, outputs);
    current = result.account;
    changed ||= result.changed;
  }
  return { account: changed ? current : account, outputs, changed };
}

/** applyAccountRecords for a single record. */
export function applyRecord(
  account: AccountState | undefined,
  record: InputRecord,
  config: BillingConfig,
): AccountResult {
  return applyAccountRecords(account, [record], config);
}

/**
 * A tick: every account of the state with an open hold whose expiry the tick's event time passes has
 * those holds expired (accounts in key order, so the outputs do not depend on how the state was
 * assembled). Accounts without such a hold are not touched, so the state needs only those: the
 * processor brings them by their earliest expiry (earliestHoldExpiry). A tick has no dedupe (it belongs
 * to no account) and needs none: applying one again expires nothing more.
 */
/**
 * The earliest event time at which a tick changes this account (a hold expiring, a dated grant starting
 * or ending, an allowance period ending), or null when no tick ever would: a tick at or after it is due
 * for the account. The processor keeps it per account of a partition (its hold registry), so a tick
 * finds every account it is due for, loaded or not.
 */
export function nextTimedChange(account: AccountState, config: BillingConfig): number | null {
  let next: number | null = null;
  const consider = (ms: number | null) => {
    if (ms !== null && (next === null || ms < next)) next = ms;
  };
  // A hold expires once event time is past its expires_at: from one millisecond after it.
  if (account.holds !== undefined) {
    const expiry = earliestHoldExpiry(account);
    consider(expiry === null ? null : expiry + 1);
  }
  if (account.grants !== undefined) consider(earliestGrantChange(account));
  if (account.period !== undefined) consider(nextPeriodBoundary(account, config));
  return next;
}

function applyTick(
  accounts: Record<string, AccountState>,
  copied: Ownership,
  tick: TickRecord,
  config: BillingConfig,
  outputs: TopicOutput[],
  logTimeMs: number | undefined,
): void {
  const tickMs = epochMs(tick.occurred_at);
  // A tick dated ahead would expire holds early; one dated behind, late. Bounded as records are.
  const skew = timeSkewReason(tick.occurred_at, tickMs, logTimeMs, config);
  if (skew !== undefined) {
    outputs.push({
      kind: "tick_rejected",
      schema_version: SCHEMA_VERSION,
      record_id: tick.record_id,
      partition: tick.partition,
      occurred_at: tick.occurred_at,
      code: "RECORD_TIME_SKEW",
      reason: skew,
    });
    return;
  }
  const due: string[] = [];
  for (const key in accounts) {
    const next = nextTimedChange(accounts[key]!, config);
    if (next !== null && next <= tickMs) due.push(key);
  }
  due.sort();
  for (const key of due) {
    const account = copied.has(key) ? accounts[key]! : cloneAccount(accounts[key]!);
    expireHolds(account, tickMs, tick, outputs as Output[]);
    advanceGrants(account, tickMs, tick, outputs as Output[]);
    advancePeriod(account, config, tickMs, tick, outputs as Output[], account.enterprise_id ?? "");
    accounts[key] = account;
    copied.add(key);
  }
}

/**
 * Which accounts of the batch's map this call may mutate: those it copied already (applyBatch), or all
 * of them (applyBatchInPlace).
 */
type Ownership = { has(key: string): boolean; add(key: string): void };
const OWNS_ALL: Ownership = { has: () => true, add: () => {} };

/**
 * THE entry point: applies an ordered batch (any mix of accounts) to the state and returns the new
 * state and every output, in input order, each carrying its record's `seq`. Pure: the input state is
 * not mutated; each touched account is copied once; untouched accounts are shared. A batch read off
 * the input topic may hold ticks (TopicRecord); its outputs may then hold `tick_rejected`.
 */
export function applyBatch<S = unknown>(
  state: BillingState,
  records: readonly SequencedRecord<S>[],
  config: BillingConfig,
): { state: BillingState; outputs: SequencedOutput<S>[] };
export function applyBatch<S = unknown>(
  state: BillingState,
  records: readonly SequencedRecord<S, TopicRecord>[],
  config: BillingConfig,
): { state: BillingState; outputs: SequencedTopicOutput<S>[] };
export function applyBatch<S = unknown>(
  state: BillingState,
  records: readonly SequencedRecord<S, TopicRecord>[],
  config: BillingConfig,
): { state: BillingState; outputs: SequencedTopicOutput<S>[] } {
  if (records.length === 0) return { state, outputs: [] };
  // A copy of the map of accounts (untouched accounts shared), built key by key: twice as fast as a
  // spread on a map of many accounts.
  const accounts: Record<string, AccountState> = copyMap(state.accounts);
  return { state: { accounts }, outputs: applyRecords(accounts, new Set<string>(), records, config) };
}

/**
 * applyBatch for a caller that drops the state it passes in (the audit's recompute, `compute`): the
 * same outputs and the same resulting state, but the accounts are changed where they are, with no
 * copy. Within one applyBatch call an account is already mutated record after record, so no output
 * shares anything with the account that a later record changes: skipping the copy between calls
 * changes nothing but the caller's old state (test/unit/apply-in-place.test.ts compares the two).
 * Never for the processor, whose write-behind flushes may still be reading the previous state.
 */
export function applyBatchInPlace<S = unknown>(
  state: BillingState,
  records: readonly SequencedRecord<S>[],
  config: BillingConfig,
): SequencedOutput<S>[];
export function applyBatchInPlace<S = unknown>(
  state: BillingState,
  records: readonly SequencedRecord<S, TopicRecord>[],
  config: BillingConfig,
): SequencedTopicOutput<S>[];
export function applyBatchInPlace<S = unknown>(
  state: BillingState,
  records: readonly SequencedRecord<S, TopicRecord>[],
  config: BillingConfig,
): SequencedTopicOutput<S>[] {
  return applyRecords(state.accounts, OWNS_ALL, records, config);
}

function applyRecords<S>(
  accounts: Record<string, AccountState>,
  copied: Ownership,
  records: readonly SequencedRecord<S, TopicRecord>[],
  config: BillingConfig,
): SequencedTopicOutput<S>[] {
  const outputs: SequencedTopicOutput<S>[] = [];
  for (const { record, seq, logTimeMs } of records) {
    const first = outputs.length;
    if (record.type === "tick") {
      applyTick(accounts, copied, record, config, outputs, logTimeMs);
    } else {
      const key = accountKeyOf(record);
      let account = ownValue(accounts, key);
      if (account !== undefined && !copied.has(key)) account = cloneAccount(account);
      const result = applyInPlace(account, record, config, outputs as Output[], logTimeMs, key);
      if (result.account !== undefined) {
        accounts[key] = result.account;
        copied.add(key);
      }
    }
    // The outputs were made by this call for this record: the seq is set on them, not on copies.
    if (seq !== undefined) for (let i = first; i < outputs.length; i++) outputs[i]!.seq = seq;
  }
  return outputs;
}
