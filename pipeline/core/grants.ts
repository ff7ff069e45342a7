import { type CreditRecord, epochMs, type Output, SCHEMA_VERSION } from "../../schemas/index.ts";
import { type AccountState, balanceSnapshot, canContinue, type GrantState } from "./account.ts";
import { rearmThresholds, resumableEvents } from "./budget.ts";
import type { OutputBase } from "./output-base.ts";
import { emptyMap } from "./own.ts";

/**
 * Grants: free tokens with a priority, an effective time and an expiry (a grant naming none of them:
 * priority 0, effective at once, no expiry). Usage burns them before
 * the allowance and the paid balance, in one documented order (OpenMeter's): lower `priority` first,
 * then the earliest expiry (none last), then the oldest grant, then the grant id. Grant tokens are not
 * billed, as allowance tokens are not. A grant counts from the first record (or tick) of the account at
 * or after its effective_at and ends at the first one past its expires_at: by event time, so a replay
 * expires it at the same record.
 */

/**
 * Whether a credit is a grant, its own bucket of free tokens. Every grant is: tokens given are never
 * billed, nor split 70/30 as if someone had paid for them. (Before 2026-12-07 a grant naming no date
 * added to the paid balance and was billed; accounts keep what such grants added then.)
 */
export function isGrant(record: CreditRecord): boolean {
  return record.kind === "grant";
}

function expiryMs(grant: GrantState): number {
  return grant.expires_at === null ? Number.POSITIVE_INFINITY : epochMs(grant.expires_at);
}

/** Whether the grant may be spent at event time `eventMs` (what advanceGrants will have made of it). */
function spendableAt(grant: GrantState, eventMs: number): boolean {
  if (grant.expires_at !== null && epochMs(grant.expires_at) < eventMs) return false;
  return grant.active || epochMs(grant.effective_at) <= eventMs;
}

function burnCompare([idA, a]: [string, GrantState], [idB, b]: [string, GrantState]): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const ea = expiryMs(a);
  const eb = expiryMs(b);
  if (ea !== eb) return ea < eb ? -1 : 1;
  const ga = epochMs(a.granted_at);
  const gb = epochMs(b.granted_at);
  if (ga !== gb) return ga - gb;
  return idA < idB ? -1 : idA > idB ? 1 : 0;
}

/**
 * How `tokens` would be taken from the grants spendable at `eventMs`, in burn order, without mutating:
 * the draw is planned before the record's effect (range checks, billing) and taken after the grants
 * were brought to its event time, which gives the same grants.
 */
export function planGrantDraw(
  account: AccountState,
  tokens: number,
  eventMs: number,
): { total: number; draws: [string, number][] } {
  const draws: [string, number][] = [];
  let total = 0;
  const grants = account.grants;
  if (grants === undefined || tokens === 0) return { total, draws };
  const open: [string, GrantState][] = [];
  for (const id in grants) {
    const grant = grants[id]!;
    if (grant.used < grant.tokens && spendableAt(grant, eventMs)) open.push([id, grant]);
  }
  open.sort(burnCompare);
  for (const [id, grant] of open) {
    if (total === tokens) break;
    const take = Math.min(tokens - total, grant.tokens - grant.used);
    draws.push([id, take]);
    total += take;
  }
  return { total, draws };
}

/** Takes planned draws. Grants are replaced, never mutated (a copy of the account shares them). */
export function takeGrants(account: AccountState, draws: readonly [string, number][]): void {
  for (const [id, tokens] of draws) {
    const grant = account.grants![id]!;
    account.grants![id] = { ...grant, used: grant.used + tokens };
  }
}

/**
 * Gives a voided record's grant tokens back to each grant still there; a grant that expired since took
 * its tokens with it (they were forfeited). Returns the tokens given back.
 */
export function returnGrants(account: AccountState, draws: Readonly<Record<string, number>>): number {
  const grants = account.grants;
  if (grants === undefined) return 0;
  let back = 0;
  for (const id in draws) {
    if (!Object.hasOwn(grants, id)) continue;
    const grant = grants[id]!;
    const tokens = Math.min(draws[id]!, grant.used);
    grants[id] = { ...grant, used: grant.used - tokens };
    back += tokens;
  }
  return back;
}

/** Adds a dated grant from its credit record; it is spendable once event time reaches effective_at. */
export function addGrant(account: AccountState, record: CreditRecord, eventMs: number): void {
  const effectiveAt = record.effective_at ?? record.occurred_at;
  account.grants ??= emptyMap();
  account.grants[record.record_id] = {
    tokens: record.tokens,
    used: 0,
    priority: record.priority ?? 0,
    effective_at: effectiveAt,
    expires_at: record.expires_at ?? null,
    granted_at: record.occurred_at,
    enterprise_id: record.enterprise_id,
    active: epochMs(effectiveAt) <= eventMs,
  };
}

/**
 * Tokens left in the effective grants that end before `ms` (their `expires_at` is earlier): a hold
 * lasting until `ms` cannot count on them, since they may be forfeited before its usage comes.
 */
export function grantTokensEndingBefore(account: AccountState, ms: number): number {
  const grants = account.grants;
  if (grants === undefined) return 0;
  let ending = 0;
  for (const id in grants) {
    const grant = grants[id]!;
    if (grant.active && grant.expires_at !== null && epochMs(grant.expires_at) < ms)
      ending += grant.tokens - grant.used;
  }
  return ending;
}

/**
 * The earliest event time at which the grants change by time alone (one starts or one expires), or
 * null. A tick before it changes nothing in the account.
 */
export function earliestGrantChange(account: AccountState): number | null {
  const grants = account.grants;
  if (grants === undefined) return null;
  let earliest: number | null = null;
  for (const id in grants) {
    const grant = grants[id]!;
    // Expired once event time is past expires_at, so from expires_at + 1 ms on.
    const ms = !grant.active
      ? epochMs(grant.effective_at)
      : grant.expires_at === null
        ? null
        : epochMs(grant.expires_at) + 1;
    if (ms !== null && (earliest === null || ms < earliest)) earliest = ms;
  }
  return earliest;
}

type Cause = { record_id: string; occurred_at: string };

function grantBase(account: AccountState, enterpriseId: string, cause: Cause): OutputBase {
  return {
    schema_version: SCHEMA_VERSION,
    record_id: cause.record_id,
    account_key: account.account_key,
    level: account.level,
    enterprise_id: enterpriseId,
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id,
    occurred_at: cause.occurred_at,
  } as OutputBase;
}

/**
 * Brings the grants to event time `eventMs`: those whose effective_at it reached become spendable, those
 * whose expires_at it passed end, each with `grant_expired` and the tokens it forfeits (all of them for
 * a grant that expires before it ever started). Paused chats follow "can continue" as after a credit
 * (resumable when a grant starts; not resumable when an expiry leaves nothing). Mutates `account`.
 */
export function advanceGrants(account: AccountState, eventMs: number, cause: Cause, outputs: Output[]): void {
  const grants = account.grants;
  if (grants === undefined) return;
  const next = earliestGrantChange(account);
  if (next === null || next > eventMs) return;
  const couldContinue = canContinue(account);
  const expired: [string, GrantState][] = [];
  let touched: string | undefined;
  for (const id in grants) {
    const grant = grants[id]!;
    if (grant.expires_at !== null && epochMs(grant.expires_at) < eventMs) expired.push([id, grant]);
    else if (!grant.active && epochMs(grant.effective_at) <= eventMs) {
      grants[id] = { ...grant, active: true };
      touched ??= grant.enterprise_id;
    }
  }
  expired.sort(([idA, a], [idB, b]) => {
    const ea = expiryMs(a);
    const eb = expiryMs(b);
    return ea !== eb ? ea - eb : idA < idB ? -1 : idA > idB ? 1 : 0;
  });
  for (const [id] of expired) delete grants[id];
  for (const [id, grant] of expired) {
    touched ??= grant.enterprise_id;
    outputs.push({
      kind: "budget_event",
      event: "grant_expired",
      ...grantBase(account, grant.enterprise_id, cause),
      grant_id: id,
      expires_at: grant.expires_at!,
      granted_tokens: grant.tokens,
      forfeited_tokens: grant.tokens - grant.used,
      balance: balanceSnapshot(account),
    });
  }
  if (touched !== undefined) {
    // A grant that starts adds to the thresholds' capacity as a credit does: those usage is back under
    // are re-armed, so the next crossing is raised. None is raised here: an expiry shrinks the
    // capacity, and the account's next usage raises what it then crosses (a tick that also opens a
    // new period would otherwise raise an alert the new period takes back at once).
    rearmThresholds(account);
    for (const event of resumableEvents(account, grantBase(account, touched, cause), couldContinue)) {
      outputs.push(event);
    }
  }
}
