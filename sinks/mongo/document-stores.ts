/**
 * The MongoDB adapters of the processor's watermarked stores (pipeline/processor/ports.ts): account
 * documents and per-partition revenue ledgers, read and written through watermarked-store.ts.
 */
import type { AccountState } from "../../pipeline/core/index.ts";
import type { RevenueLedger } from "../../pipeline/core/revenue-ledger.ts";
import type { HoldRegistry } from "../../pipeline/processor/hold-registry.ts";
import type {
  AccountAddress,
  AccountStore,
  DocRef,
  HoldRegistryStore,
  LedgerStore,
  LoadedDoc,
  PendingWrite,
  SourcePartition,
  WatermarkedStore,
} from "../../pipeline/processor/ports.ts";
import { topicPartitionKeyOf } from "../../schemas/keys.ts";
import { fromStoredAccount, toStoredAccount } from "./account-codec.ts";
import { accountDocProblem } from "./account-doc.ts";
import { accountDocRef } from "./accounts.ts";
import { namespaceOf } from "./bulk.ts";
import type { IndexRegistry } from "./indexes.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";
import type { Limiter } from "./limiter.ts";
import { revenueDocRef } from "./revenue.ts";
import { loadDocs, writeDocs } from "./watermarked-store.ts";

class MongoWatermarkedStore<T extends object> implements WatermarkedStore<T> {
  constructor(
    protected readonly layout: MongoLayout,
    private readonly limiter: Limiter,
  ) {}

  async load(refs: readonly DocRef[]): Promise<Map<DocRef, LoadedDoc<T>>> {
    const loaded = new Map<DocRef, LoadedDoc<T>>();
    const byNamespace = new Map<string, DocRef[]>();
    for (const ref of refs) {
      const group = byNamespace.get(ref.namespace);
      if (group === undefined) byNamespace.set(ref.namespace, [ref]);
      else group.push(ref);
    }
    await Promise.all(
      [...byNamespace].map(async ([namespace, group]) => {
        const docs = await loadDocs<T>(
          this.layout.collectionAt(namespace),
          group.map((ref) => ref.id),
        );
        for (const ref of group) loaded.set(ref, docs.get(ref.id)!);
      }),
    );
    return loaded;
  }

  write(writes: readonly PendingWrite<T>[], at: SourcePartition): Promise<void> {
    return writeDocs(writes, at, this.limiter, (ref) => this.layout.collectionAt(ref.namespace));
  }
}

export class MongoAccountStore extends MongoWatermarkedStore<AccountState> implements AccountStore {
  constructor(
    layout: MongoLayout,
    limiter: Limiter,
    private readonly indexes: IndexRegistry,
  ) {
    super(layout, limiter);
  }

  refOf(address: AccountAddress): DocRef {
    const { collection, id } = accountDocRef(this.layout, address);
    return { namespace: namespaceOf(collection), id };
  }

  prepareApp(enterpriseId: string): Promise<void> {
    return this.indexes.app(enterpriseId);
  }

  problemOf(body: AccountState, accountKey: string): string | undefined {
    return accountDocProblem(body, accountKey);
  }

  /** Reads each account's stored form (account-codec.ts); a pack that cannot be read makes it invalid. */
  override async load(refs: readonly DocRef[]): Promise<Map<DocRef, LoadedDoc<AccountState>>> {
    const loaded = await super.load(refs);
    for (const [ref, doc] of loaded) {
      if (doc.body === undefined) continue;
      const decoded = fromStoredAccount(doc.body as unknown as Record<string, unknown>);
      loaded.set(
        ref,
        "problem" in decoded
          ? { body: undefined, wm: null, invalid: `${ref.namespace}/${ref.id}: ${decoded.problem}` }
          : { body: decoded.account, wm: doc.wm },
      );
    }
    return loaded;
  }

  override write(writes: readonly PendingWrite<AccountState>[], at: SourcePartition): Promise<void> {
    return super.write(
      writes.map((write) => ({ ...write, body: toStoredAccount(write.body) as AccountState })),
      at,
    );
  }
}

export class MongoHoldRegistryStore extends MongoWatermarkedStore<HoldRegistry> implements HoldRegistryStore {
  refOf(source: string, partition: number, bucket: number): DocRef {
    return { namespace: this.namespace(), id: `${topicPartitionKeyOf(source, partition)}#${bucket}` };
  }

  legacyRefOf(source: string, partition: number): DocRef {
    return { namespace: this.namespace(), id: topicPartitionKeyOf(source, partition) };
  }

  private namespace(): string {
    return namespaceOf(this.layout.platform().collection(COLLECTIONS.platform.holdRegistry));
  }
}

export class MongoLedgerStore extends MongoWatermarkedStore<RevenueLedger> implements LedgerStore {
  refOf(enterpriseId: string, source: string, partition: number): DocRef {
    const { collection, id } = revenueDocRef(this.layout, enterpriseId, source, partition);
    return { namespace: namespaceOf(collection), id };
  }
}
