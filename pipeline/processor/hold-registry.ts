/**
 * Which accounts of one input partition a tick will change, and from when (holds expiring, dated
 * grants starting or ending, allowance periods ending: core nextTimedChange): what a tick needs to
 * find the accounts it is due for, including those not in memory (an idle account is exactly the one
 * a tick is for). Kept per partition as one watermarked document beside the revenue ledgers, so a new
 * owner finds every account a tick is due for, and a former owner cannot overwrite it.
 */
import { type AccountState, type BillingConfig, nextTimedChange } from "../core/index.ts";
import type { AccountAddress } from "./ports.ts";

export interface HoldRegistryEntry {
  account_key: string;
  /** The event time (epoch ms) from which a tick changes the account (core nextTimedChange). */
  due_ms: number;
  address: AccountAddress;
}

export interface HoldRegistry {
  partition: number;
  /** An array, not a map: account keys would be field names, and ids may hold characters fields may not. */
  entries: HoldRegistryEntry[];
}

export function emptyRegistry(partition: number): HoldRegistry {
  return { partition, entries: [] };
}

/** Accounts a tick at `tickMs` is due for, in key order. */
export function dueAccounts(registry: HoldRegistry, tickMs: number): HoldRegistryEntry[] {
  return registry.entries
    .filter((entry) => entry.due_ms <= tickMs)
    .sort((a, b) => (a.account_key < b.account_key ? -1 : a.account_key > b.account_key ? 1 : 0));
}

/**
 * The registry after accounts changed: each is listed with the time a tick next changes it, or removed
 * when no tick would. Returns undefined when nothing changed (no write needed).
 */
export function updateRegistry(
  registry: HoldRegistry,
  accounts: ReadonlyMap<string, AccountState>,
  billing: BillingConfig,
): HoldRegistry | undefined {
  const byKey = new Map(registry.entries.map((entry) => [entry.account_key, entry]));
  let changed = false;
  for (const [key, account] of accounts) {
    const earliest = nextTimedChange(account, billing);
    const known = byKey.get(key);
    if (earliest === null) {
      if (known !== undefined) {
        byKey.delete(key);
        changed = true;
      }
      continue;
    }
    if (known?.due_ms === earliest) continue;
    byKey.set(key, { account_key: key, due_ms: earliest, address: addressOf(account) });
    changed = true;
  }
  return changed ? { partition: registry.partition, entries: [...byKey.values()] } : undefined;
}

function addressOf(account: AccountState): AccountAddress {
  return {
    level: account.level,
    enterprise_id: account.enterprise_id ?? "",
    mozaiks_user_id: account.mozaiks_user_id,
    platform_user_id: account.platform_user_id ?? null,
  };
}
