/**
 * The documents one input partition holds in memory: the accounts and revenue ledgers it has touched,
 * so a record costs no database round trip. Memory is bounded: past the cap, the least recently used
 * clean documents are dropped and loaded again on demand.
 */
import type { AccountState } from "../core/index.ts";
import type { RevenueLedger } from "../core/revenue-ledger.ts";
import type { HoldRegistry } from "./hold-registry.ts";
import { PauseDocuments } from "./pause-documents.ts";
import type { DocRef, PendingWrite, Watermark } from "./ports.ts";

export interface Owned<T> {
  ref: DocRef;
  body: T | undefined;
  /** Position of the last record in the stored document (null: no document yet). */
  stored: Watermark | null;
  /** Offset (in this partition's source) of the last record applied in memory but not yet written. */
  pendingWm: bigint | undefined;
}

/** Documents of one kind by key, in least-recently-used order (Map order). */
export class OwnedDocs<T> {
  private readonly docs = new Map<string, Owned<T>>();
  /** Documents of this batch that cannot be read (key -> why); found again on every batch's load. */
  readonly invalid = new Map<string, string>();
  /**
   * Keys a plan found in memory and relies on while it waits for the stores (PartitionWorker.loadMissing):
   * a write-behind cycle that becomes durable meanwhile must not drop them.
   */
  private readonly pinned = new Set<string>();

  get size(): number {
    return this.docs.size;
  }

  has(key: string): boolean {
    return this.docs.has(key);
  }

  get(key: string): Owned<T> | undefined {
    return this.docs.get(key);
  }

  set(key: string, owned: Owned<T>): void {
    this.docs.set(key, owned);
  }

  /** Marks a key as just used: it leaves memory last. */
  touch(key: string): Owned<T> {
    const owned = this.docs.get(key)!;
    this.docs.delete(key);
    this.docs.set(key, owned);
    return owned;
  }

  /** Every document with changes not yet written, as a write on the position its writer loaded. */
  pendingWrites(): PendingWrite<T>[] {
    const writes: PendingWrite<T>[] = [];
    for (const owned of this.docs.values())
      if (owned.pendingWm !== undefined) writes.push(pendingWrite(owned));
    return writes;
  }

  /** Keeps `keys` in memory until `unpin`, clean or not. */
  pin(keys: Iterable<string>): void {
    for (const key of keys) this.pinned.add(key);
  }

  unpin(): void {
    this.pinned.clear();
  }

  /** Drops the least recently used clean documents past `max`, never a pinned one. */
  evict(max: number, forget: (key: string) => void): void {
    let over = this.docs.size - max;
    for (const [key, owned] of this.docs) {
      if (over <= 0) return;
      if (owned.pendingWm !== undefined || this.pinned.has(key)) continue;
      this.docs.delete(key);
      forget(key);
      over--;
    }
  }

  clear(): void {
    this.docs.clear();
    this.invalid.clear();
    this.pinned.clear();
  }
}

export function pendingWrite<T>(owned: Owned<T>): PendingWrite<T> {
  return { ref: owned.ref, body: owned.body!, loaded: owned.stored, newWm: owned.pendingWm!, owner: owned };
}

export class PartitionMemory {
  readonly accounts = new OwnedDocs<AccountState>();
  /** Revenue ledgers by enterprise id. */
  readonly ledgers = new OwnedDocs<RevenueLedger>();
  /** Open chats that have, or may have, a pause document (see `PauseDocuments`). */
  readonly pauses = new PauseDocuments();
  /** Accounts of the partition a tick would change, by bucket (hold-registry.ts); loaded with the first batch. */
  registry: Owned<HoldRegistry>[] | undefined;

  constructor(private readonly maxCached: number) {}

  /**
   * The stores now hold these writes (one plan's, or a write-behind cycle's): each document's stored
   * watermark moves up to what was written, and a document no later plan has touched since is clean
   * again (and may leave memory).
   */
  durable(writes: readonly PendingWrite<unknown>[], at: { source: string; partition: number }): void {
    for (const write of writes) {
      const owned = write.owner;
      if (owned === undefined) continue;
      owned.stored = { topic: at.source, partition: at.partition, offset: write.newWm };
      if (owned.pendingWm === write.newWm) owned.pendingWm = undefined;
    }
    this.accounts.evict(this.maxCached, (key) => this.pauses.forget(key));
    this.ledgers.evict(this.maxCached, () => undefined);
  }

  clear(): void {
    this.accounts.clear();
    this.ledgers.clear();
    this.pauses.clear();
    this.registry = undefined;
  }
}
