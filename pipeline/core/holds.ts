import type {
  BudgetEvent,
  HoldDecision,
  HoldDenialReason,
  HoldRecord,
  InputRecord,
  Output,
  ReleaseRecord,
} from "../../schemas/index.ts";
import { epochMs, SCHEMA_VERSION } from "../../schemas/index.ts";
import { type AccountState, availableTokens, balanceSnapshot, type HoldState } from "./account.ts";
import type { BillingConfig } from "./billing-config.ts";
import { isDuplicate, remember } from "./dedupe.ts";
import { grantTokensEndingBefore } from "./grants.ts";
import type { OutputBase } from "./output-base.ts";
import { emptyMap, ownValue } from "./own.ts";

/**
 * Holds: tokens reserved for an agent turn, decided by the account's one writer (the processor that
 * owns its partition applies its records in order), so a decision needs no lock and a replay decides
 * the same. A hold is granted only within what the account can spend and other holds do not already
 * reserve; it ends exactly once: settled by a usage record naming it, released, or expired when the
 * account's event time passes its `expires_at`. Holds never bill: usage bills, with or without one.
 */

/**
 * A granted hold id is remembered among the account's record ids, under a key no record id can take
 * (`/` is in no id), so it is kept, swept and capped exactly as record ids are: a hold id is never
 * granted twice while a repeated record id would still be recognised.
 */
const HOLD_ID_KEY = "hold/";

function holdIdKey(holdId: string): string {
  return HOLD_ID_KEY + holdId;
}

/** Tokens the account's open holds reserve. */
export function heldTokens(account: AccountState): number {
  const holds = account.holds;
  if (holds === undefined) return 0;
  let held = 0;
  for (const id in holds) held += holds[id]!.tokens;
  return held;
}

/**
 * What a new hold may still take: allowance left + paid left - tokens held. Holds alone never take it
 * below zero; usage, which is metered after the fact and never refused, may.
 */
export function holdAvailableTokens(account: AccountState): number {
  return availableTokens(account) - heldTokens(account);
}

export function openHoldCount(account: AccountState): number {
  return account.holds === undefined ? 0 : Object.keys(account.holds).length;
}

/**
 * The earliest `expires_at` of the account's open holds, in epoch ms, or null when it has none. A tick
 * at or before it changes nothing in the account, so the processor keeps an index of it per account and
 * brings to a tick only the accounts whose earliest expiry the tick passes.
 */
export function earliestHoldExpiry(account: AccountState): number | null {
  const holds = account.holds;
  if (holds === undefined) return null;
  let earliest: number | null = null;
  for (const id in holds) {
    const ms = epochMs(holds[id]!.expires_at);
    if (earliest === null || ms < earliest) earliest = ms;
  }
  return earliest;
}

/** A hold expires once event time is past its expires_at: until then (that instant included) it is valid. */
export function holdExpiresBy(hold: HoldState, eventMs: number): boolean {
  return epochMs(hold.expires_at) < eventMs;
}

type Cause = { record_id: string; occurred_at: string };

/**
 * Outputs about a hold name the account, the app the hold record named and the record (or tick) that
 * caused them.
 */
function holdBase(account: AccountState, hold: HoldState, cause: Cause): OutputBase {
  return {
    schema_version: SCHEMA_VERSION,
    record_id: cause.record_id,
    account_key: account.account_key,
    level: account.level,
    enterprise_id: hold.enterprise_id,
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
    occurred_at: cause.occurred_at,
  } as OutputBase;
}

function closeHold(account: AccountState, holdId: string): void {
  const holds = account.holds!;
  delete holds[holdId];
  // An account without open holds carries no `holds` field, as before it ever held.
  for (const _ in holds) return;
  delete account.holds;
}

/**
 * Expires every open hold whose expires_at `eventMs` passes, earliest first (ties by hold id), each
 * with a `hold_expired` event naming `cause`. Mutates `account`; returns whether anything expired.
 */
export function expireHolds(
  account: AccountState,
  eventMs: number,
  cause: Cause,
  outputs: Output[],
): boolean {
  const holds = account.holds;
  if (holds === undefined) return false;
  const due: [string, HoldState, number][] = [];
  for (const id in holds) {
    const hold = holds[id]!;
    const ms = epochMs(hold.expires_at);
    if (ms < eventMs) due.push([id, hold, ms]);
  }
  if (due.length === 0) return false;
  due.sort(([idA, , msA], [idB, , msB]) => (msA !== msB ? msA - msB : idA < idB ? -1 : idA > idB ? 1 : 0));
  for (const [id, hold] of due) {
    closeHold(account, id);
    outputs.push({
      kind: "budget_event",
      event: "hold_expired",
      ...holdBase(account, hold, cause),
      chat_id: hold.chat_id,
      hold_id: id,
      hold_tokens: hold.tokens,
      expires_at: hold.expires_at,
      held_tokens: heldTokens(account),
      balance: balanceSnapshot(account),
    });
  }
  return true;
}

type Denial = { reason: HoldDenialReason; detail: string };

/** Why the hold cannot be granted, or undefined when it can. Reads, never writes. */
function denialOf(
  account: AccountState,
  record: HoldRecord,
  config: BillingConfig,
  eventMs: number,
): Denial | undefined {
  if (isDuplicate(account.dedupe, holdIdKey(record.hold_id))) {
    return {
      reason: "hold_id_ended",
      detail: `hold ${record.hold_id} was granted before and has ended; a hold id is used once`,
    };
  }
  const expiresMs = epochMs(record.expires_at);
  const lastsMs = expiresMs - epochMs(record.occurred_at);
  if (lastsMs > config.holds.max_seconds * 1000) {
    return {
      reason: "expiry_too_far",
      detail: `expires_at ${record.expires_at} is ${lastsMs / 1000}s after occurred_at; the bound is ${config.holds.max_seconds}s (holds.max_seconds)`,
    };
  }
  if (expiresMs < eventMs) {
    return {
      reason: "expired",
      detail: `expires_at ${record.expires_at} is before the account's event time ${new Date(eventMs).toISOString()}`,
    };
  }
  const open = openHoldCount(account);
  if (open >= config.holds.max_open) {
    return {
      reason: "too_many_holds",
      detail: `the account has ${open} open holds; the bound is ${config.holds.max_open} (holds.max_open)`,
    };
  }
  // Grant tokens forfeited before the hold ends are not there for its settle: counted, a granted turn
  // would be billed in overdraft once the grant expired under it.
  const ending = grantTokensEndingBefore(account, expiresMs);
  const available = holdAvailableTokens(account) - ending;
  if (available < record.tokens) {
    const lapsing = ending > 0 ? `, ${ending} in grants that expire before the hold` : "";
    return {
      reason: "insufficient_tokens",
      detail: `asks ${record.tokens} tokens, ${Math.max(0, available)} available (${availableTokens(account)} left, ${heldTokens(account)} held${lapsing})`,
    };
  }
  return undefined;
}

function decision(
  account: AccountState,
  record: HoldRecord,
  base: OutputBase,
  fields: Pick<HoldDecision, "granted" | "repeated" | "reason" | "detail" | "tokens" | "expires_at">,
): HoldDecision {
  return {
    kind: "hold_decision",
    ...base,
    hold_id: record.hold_id,
    chat_id: record.chat_id,
    ...fields,
    available_tokens: holdAvailableTokens(account),
    held_tokens: heldTokens(account),
  };
}

/**
 * Decides a hold record against the account as it stands (expired holds already closed): a hold id
 * already open repeats its grant; otherwise it is granted if nothing denies it (denialOf). Exactly one
 * `hold_decision`. Mutates `account` when granting.
 */
export function decideHold(
  account: AccountState,
  record: HoldRecord,
  config: BillingConfig,
  outputs: Output[],
  base: OutputBase,
  eventMs: number,
): void {
  const open = account.holds === undefined ? undefined : ownValue(account.holds, record.hold_id);
  if (open !== undefined) {
    outputs.push(
      decision(account, record, base, {
        granted: true,
        repeated: true,
        reason: null,
        detail: null,
        tokens: open.tokens,
        expires_at: open.expires_at,
      }),
    );
    return;
  }
  const denial = denialOf(account, record, config, eventMs);
  if (denial === undefined) {
    account.holds ??= emptyMap();
    account.holds[record.hold_id] = {
      chat_id: record.chat_id,
      tokens: record.tokens,
      expires_at: record.expires_at,
      record_id: record.record_id,
      occurred_at: record.occurred_at,
      enterprise_id: record.enterprise_id,
    };
    remember(account.dedupe, holdIdKey(record.hold_id), epochMs(record.occurred_at), config);
  }
  outputs.push(
    decision(account, record, base, {
      granted: denial === undefined,
      repeated: false,
      reason: denial?.reason ?? null,
      detail: denial?.detail ?? null,
      tokens: record.tokens,
      expires_at: record.expires_at,
    }),
  );
}

/**
 * The denial a rejected hold record gets besides its `rejected` output, so a caller waiting for the
 * decision hears at once instead of timing out. `account` is the account as it stands (unchanged).
 */
export function rejectedHoldDecision(
  account: AccountState,
  record: HoldRecord,
  base: OutputBase,
  detail: string,
): HoldDecision {
  return decision(account, record, base, {
    granted: false,
    repeated: false,
    reason: "record_rejected",
    detail,
    tokens: record.tokens,
    expires_at: record.expires_at,
  });
}

function notOpen(
  account: AccountState,
  holdId: string,
  recordType: "usage" | "release",
  base: OutputBase,
): BudgetEvent {
  return {
    kind: "budget_event",
    event: "hold_not_open",
    ...base,
    hold_id: holdId,
    record_type: recordType,
    ended: isDuplicate(account.dedupe, holdIdKey(holdId)),
  };
}

/** A release record: the open hold is given back (`hold_released`), or `hold_not_open`. Mutates. */
export function releaseHold(
  account: AccountState,
  record: ReleaseRecord,
  outputs: Output[],
  base: OutputBase,
): void {
  const hold = account.holds === undefined ? undefined : ownValue(account.holds, record.hold_id);
  if (hold === undefined) {
    outputs.push(notOpen(account, record.hold_id, "release", base));
    return;
  }
  closeHold(account, record.hold_id);
  outputs.push({
    kind: "budget_event",
    event: "hold_released",
    ...base,
    chat_id: hold.chat_id,
    hold_id: record.hold_id,
    hold_tokens: hold.tokens,
    held_tokens: heldTokens(account),
    balance: balanceSnapshot(account),
  });
}

/**
 * A usage record naming a hold, after the usage was metered (billed as any usage, never the estimate):
 * the hold is closed and whatever it reserved beyond the usage is free again (`hold_settled`), or
 * `hold_not_open`. Mutates.
 */
export function settleHold(
  account: AccountState,
  holdId: string,
  usedTokens: number,
  outputs: Output[],
  base: OutputBase,
): void {
  const hold = account.holds === undefined ? undefined : ownValue(account.holds, holdId);
  if (hold === undefined) {
    outputs.push(notOpen(account, holdId, "usage", base));
    return;
  }
  closeHold(account, holdId);
  outputs.push({
    kind: "budget_event",
    event: "hold_settled",
    ...base,
    chat_id: hold.chat_id,
    hold_id: holdId,
    hold_tokens: hold.tokens,
    used_tokens: usedTokens,
    released_tokens: Math.max(0, hold.tokens - usedTokens),
    held_tokens: heldTokens(account),
    balance: balanceSnapshot(account),
  });
}

/** The event time holds are judged at when `record` is applied: the account's newest, or the record's. */
export function holdClockMs(account: AccountState, record: InputRecord): number {
  const ms = epochMs(record.occurred_at);
  const newest = account.dedupe.max_event_ms;
  return newest === null || ms > newest ? ms : newest;
}
