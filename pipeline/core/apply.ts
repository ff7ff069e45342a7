import type { InputRecord, Output } from "../../schemas/index.ts";
import { accountKeyOf, epochMs } from "../../schemas/index.ts";
import { AgentmeterError } from "../errors.ts";
import { type AccountState, newAccount } from "./account.ts";
import { applyCredit } from "./apply-credit.ts";
import { applySession } from "./apply-session.ts";
import { applyUsage } from "./apply-usage.ts";
import type { BillingConfig } from "./config.ts";
import { isDuplicate, isTooLate, remember } from "./dedupe.ts";
import { outputBase } from "./output-base.ts";
import { ownValue } from "./own.ts";
import { priceUsage } from "./pricebook.ts";

/** All accounts, by account key. Plain data; untouched accounts are shared between states. */
export type BillingState = { accounts: Record<string, AccountState> };

/** A record plus an opaque position (e.g. Kafka partition and offset) copied into its outputs. */
export type SequencedRecord<S = unknown> = { record: InputRecord; seq?: S };
export type SequencedOutput<S = unknown> = Output & { seq?: S };

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

/**
 * Applies one record to an account the caller owns (already copied), pushing outputs in order.
 * Returns the account (created on first sight) and whether the record took effect.
 */
function applyInPlace(
  account: AccountState | undefined,
  record: InputRecord,
  config: BillingConfig,
  outputs: Output[],
): { account: AccountState | undefined; changed: boolean } {
  const base = outputBase(record);
  const occurredMs = epochMs(record.occurred_at);
  // Too-late is checked before duplicates: a too-late id may already be forgotten, and the answer
  // must not depend on when ids are swept.
  if (account !== undefined && isTooLate(account.dedupe, occurredMs, config)) {
    const newest = new Date(account.dedupe.max_event_ms!).toISOString();
    const reason = `occurred_at ${record.occurred_at} is ${config.dedupe.horizon_seconds}s or more before the account's newest event ${newest}`;
    outputs.push({ kind: "rejected", ...base, code: "RECORD_TOO_LATE", reason });
    return { account, changed: false };
  }
  if (account !== undefined && isDuplicate(account.dedupe, record.record_id)) {
    outputs.push({ kind: "duplicate_ignored", ...base, record_type: record.type });
    return { account, changed: false };
  }

  let target: AccountState;
  if (record.type === "usage") {
    const priced = priceUsage(record, config);
    if (!priced.ok) {
      outputs.push({ kind: "rejected", ...base, code: "UNKNOWN_MODEL", reason: priced.reason });
      return { account, changed: false };
    }
    target = account ?? newAccount(record, config);
    applyUsage(target, record, priced, config, outputs);
  } else if (record.type === "credit") {
    target = account ?? newAccount(record, config);
    applyCredit(target, record, config, outputs);
  } else {
    target = account ?? newAccount(record, config);
    applySession(target, record, outputs);
  }
  remember(target.dedupe, record.record_id, occurredMs, config);
  target.last_event_at = record.occurred_at;
  return { account: target, changed: true };
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
  let current = account === undefined ? undefined : structuredClone(account);
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
 * THE entry point: applies an ordered batch (any mix of accounts) to the state and returns the new
 * state and every output, in input order, each carrying its record's `seq`. Pure: the input state is
 * not mutated; each touched account is copied once; untouched accounts are shared.
 */
export function applyBatch<S = unknown>(
  state: BillingState,
  records: readonly SequencedRecord<S>[],
  config: BillingConfig,
): { state: BillingState; outputs: SequencedOutput<S>[] } {
  if (records.length === 0) return { state, outputs: [] };
  const accounts: Record<string, AccountState> = { ...state.accounts };
  const copied = new Set<string>();
  const outputs: SequencedOutput<S>[] = [];
  for (const { record, seq } of records) {
    const key = accountKeyOf(record);
    let account = ownValue(accounts, key);
    if (account !== undefined && !copied.has(key)) account = structuredClone(account);
    const recordOutputs: Output[] = [];
    const result = applyInPlace(account, record, config, recordOutputs);
    if (result.account !== undefined) {
      accounts[key] = result.account;
      copied.add(key);
    }
    for (const output of recordOutputs) outputs.push(seq === undefined ? output : { ...output, seq });
  }
  return { state: { accounts }, outputs };
}
