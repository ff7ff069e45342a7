/**
 * Which accounts of one input partition a tick will change, and from when (holds expiring, dated
 * grants starting or ending, allowance periods ending: core nextTimedChange): what a tick needs to
 * find the accounts it is due for, including those not in memory (an idle account is exactly the one
 * a tick is for). Kept per partition as REGISTRY_BUCKETS watermarked documents beside the revenue
 * ledgers, so a new owner finds every account a tick is due for, and a former owner cannot overwrite it.
 */
import { type AccountState, type BillingConfig, nextTimedChange } from "../core/index.ts";
import { keyHash } from "./partitioning.ts";
import type { AccountAddress } from "./ports.ts";

export interface HoldRegistryEntry {
  account_key: string;
  /** The event time (epoch ms) from which a tick changes the account (core nextTimedChange). */
  due_ms: number;
  address: AccountAddress;
}

/**
 * One bucket of a partition's registry: the accounts whose key hashes to it. A partition's registry is
 * REGISTRY_BUCKETS such documents, not one: with periodic allowances every account of the partition is
 * listed for good (its next period always comes), and as one document it was rewritten whole on every
 * change and refused by MongoDB past 16 MiB (about 80,000 accounts a partition).
 */
export interface HoldRegistry {
  partition: number;
  /** Which bucket; absent in the one document per partition written before buckets (read by `splitLegacy`). */
  bucket?: number;
  /** An array, not a map: account keys would be field names, and ids may hold characters fields may not. */
  entries: HoldRegistryEntry[];
}

/** Buckets a partition's registry is split into (a power of two: the bucket is the key hash's low bits). */
export const REGISTRY_BUCKETS = 64;

export function bucketOf(accountKey: string): number {
  return keyHash(accountKey) & (REGISTRY_BUCKETS - 1);
}

export function emptyRegistry(partition: number, bucket: number): HoldRegistry {
  return { partition, bucket, entries: [] };
}

/** A partition's registry as it was stored before buckets, dealt into its buckets. */
export function splitLegacy(legacy: HoldRegistry): HoldRegistry[] {
  const buckets = Array.from({ length: REGISTRY_BUCKETS }, (_, bucket) =>
    emptyRegistry(legacy.partition, bucket),
  );
  for (const entry of legacy.entries) buckets[bucketOf(entry.account_key)]!.entries.push(entry);
  return buckets;
}

/** Accounts a tick at `tickMs` is due for, in key order. */
export function dueAccounts(buckets: readonly HoldRegistry[], tickMs: number): HoldRegistryEntry[] {
  const due: HoldRegistryEntry[] = [];
  for (const bucket of buckets)
    for (const entry of bucket.entries) if (entry.due_ms <= tickMs) due.push(entry);
  return due.sort((a, b) => (a.account_key < b.account_key ? -1 : a.account_key > b.account_key ? 1 : 0));
}

/**
 * Each bucket's entries by account key, kept beside the bucket (never stored): a batch looks up the
 * accounts it touched without rebuilding a map of the whole partition. A bucket is never changed in
 * place (a queued write may hold it), so its index stays right.
 */
const indexes = new WeakMap<HoldRegistry, Map<string, HoldRegistryEntry>>();

function indexOf(bucket: HoldRegistry): Map<string, HoldRegistryEntry> {
  let index = indexes.get(bucket);
  if (index === undefined) {
    index = new Map(bucket.entries.map((entry) => [entry.account_key, entry]));
    indexes.set(bucket, index);
  }
  return index;
}

/**
 * The buckets that change after accounts changed, by bucket number: each account is listed with the
 * time a tick next changes it, or removed when no tick would. Buckets with no change are left out (no
 * write needed).
 */
export function updateRegistry(
  buckets: readonly HoldRegistry[],
  accounts: ReadonlyMap<string, AccountState>,
  billing: BillingConfig,
): Map<number, HoldRegistry> {
  const changed = new Map<number, Map<string, HoldRegistryEntry>>();
  for (const [key, account] of accounts) {
    const bucket = bucketOf(key);
    const earliest = nextTimedChange(account, billing);
    const known = (changed.get(bucket) ?? indexOf(buckets[bucket]!)).get(key);
    if (earliest === null ? known === undefined : known?.due_ms === earliest) continue;
    let next = changed.get(bucket);
    if (next === undefined) {
      next = new Map(indexOf(buckets[bucket]!));
      changed.set(bucket, next);
    }
    if (earliest === null) next.delete(key);
    else next.set(key, { account_key: key, due_ms: earliest, address: addressOf(account) });
  }
  const bodies = new Map<number, HoldRegistry>();
  for (const [bucket, index] of changed) {
    const body = { partition: buckets[bucket]!.partition, bucket, entries: [...index.values()] };
    indexes.set(body, index);
    bodies.set(bucket, body);
  }
  return bodies;
}

function addressOf(account: AccountState): AccountAddress {
  return {
    level: account.level,
    enterprise_id: account.enterprise_id ?? "",
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id ?? null,
  };
}
