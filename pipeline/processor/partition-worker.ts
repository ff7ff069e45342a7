/**
 * One owned input partition's step from fetched messages to a plan of writes: admit (decode, key,
 * partition, signature), load what memory lacks, apply the billing core, and turn its outputs into the
 * writes of a flush. The only I/O is the load, through the store ports.
 */
import type { Output, TickRecord, TopicRecord } from "../../schemas/index.ts";
import { epochMs } from "../../schemas/time.ts";
import type { CreditAuthorization } from "../auth/signature.ts";
import { type AccountState, applyBatch, type BillingConfig, budgetStateOf } from "../core/index.ts";
import {
  addToLedger,
  earnsRevenue,
  emptyLedger,
  type LedgerEntry,
  type RevenueLedger,
} from "../core/revenue-ledger.ts";
import { AgentmeterError, type ErrorCode, isAgentmeterError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { admitMessage, type InputMessage } from "./admit.ts";
import type { ApplyFailureBudget } from "./apply-failures.ts";
import type { CostWatch } from "./cost-watch.ts";
import { deadLetter } from "./dead-letter.ts";
import {
  dueAccounts,
  emptyRegistry,
  type HoldRegistry,
  type HoldRegistryEntry,
  REGISTRY_BUCKETS,
  splitLegacy,
  updateRegistry,
} from "./hold-registry.ts";
import { type Owned, PartitionMemory, pendingWrite } from "./partition-memory.ts";
import { checkSizes, emptyPlan, type FlushPlan } from "./plan.ts";
import { projectionWrites } from "./plan-projections.ts";
import {
  type AccountStore,
  type DocRef,
  type HoldRegistryStore,
  isAtOrBelow,
  type LedgerStore,
  type LoadedDoc,
  type LogPosition,
  type PendingWrite,
  type ProjectionWrite,
  type Watermark,
} from "./ports.ts";

export type { InputMessage };

/** Where this worker's records come from, as the stores know it (see sinks/mongo/topic-registry.ts). */
export interface Placement {
  /** The name watermarks, ledgers and ClickHouse rows carry: the topic, or `topic~N` after a re-creation. */
  source: string;
  /** Every partition count the topic has had: a record must sit on its key's partition under one of them. */
  partitionCounts: readonly number[];
}

export interface WorkerDeps {
  accounts: AccountStore;
  ledgers: LedgerStore;
  registry: HoldRegistryStore;
  /** Shared documents (apps, workflows) this process has written; see projectionWrites. */
  knownShared: Set<string>;
  costWatch: CostWatch;
  billing: BillingConfig;
  maxRecordBytes: number;
  /** Accounts (and ledgers) kept in memory per partition; past it the least recently used clean ones go. */
  maxCachedAccounts: number;
  /** Largest budget-state message; a record that would make one larger is refused (RECORD_STORE_REJECTED). */
  maxStateMessageBytes: number;
  /** Who may send credit records (pipeline/auth/signature.ts). */
  creditPolicy: CreditAuthorization;
  logger: Logger;
  /** Wall clock for the dead-letter envelope only; billing never reads it. */
  now: () => Date;
  /** Whether a record the billing core fails on may be dead-lettered (RECORD_APPLY_FAILED) now. */
  applyFailures: Pick<ApplyFailureBudget, "open">;
}

/** An error thrown by the billing core or the planning around it (no I/O): a bug, not a store's answer. */
class CoreFailure extends Error {
  constructor(override readonly cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
  }
}

interface Decoded {
  position: LogPosition;
  record: TopicRecord;
  key: string;
  message: InputMessage;
  logTimeMs: number | undefined;
}

export class PartitionWorker {
  private readonly memory: PartitionMemory;
  /** Memory was dropped since the last plan: what a write-behind stage still holds must land first. */
  cold = false;
  /** Memory holds nothing from before: the next plan reads every account it needs from the stores. */
  private fromStores = true;

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly deps: WorkerDeps,
    private readonly placement: Placement,
  ) {
    this.memory = new PartitionMemory(deps.maxCachedAccounts);
  }

  /** Whether a tick would change any account of the partition; undefined before its registry is loaded. */
  get awaitsTicks(): boolean | undefined {
    const registry = this.memory.registry;
    return registry === undefined
      ? undefined
      : registry.some((bucket) => (bucket.body?.entries.length ?? 0) > 0);
  }

  /** The source topic its rows are stored under (the input topic, or a replay's). */
  get source(): string {
    return this.placement.source;
  }

  get cachedAccounts(): number {
    return this.memory.accounts.size;
  }

  /** Decodes, applies and returns what to write. The in-memory state moves ahead; call `durable` or `reset` after the flush. */
  async plan(messages: readonly InputMessage[]): Promise<FlushPlan> {
    this.cold = false;
    const fromStores = this.fromStores;
    this.fromStores = false;
    try {
      return await this.planUnsafe(messages);
    } catch (error) {
      // Memory may be ahead of the stores half way through: a retry starts from what is durable.
      this.reset();
      if (!(error instanceof CoreFailure)) throw error;
      // From memory kept between batches the failure may be the memory's: the retry, from the stores,
      // decides. From the stores it is the records' and will fail the same way every time: the
      // processor then finds the record (as for a store's refusal) and dead-letters it, while the budget
      // allows; past it the batch is retried as before, until a fix is deployed.
      if (!fromStores || !this.deps.applyFailures.open) throw error.cause;
      throw new AgentmeterError(
        "RECORD_APPLY_FAILED",
        `the billing core failed on this batch, loaded fresh from the stores: ${error.message}`,
        { cause: error.cause },
      );
    }
  }

  /** A plan that only dead-letters one message (a record whose effect a store refuses) and moves past it. */
  rejection(message: InputMessage, code: ErrorCode, reason: string): FlushPlan {
    const plan = this.emptyPlan([message]);
    this.reject(plan, message, code, reason);
    return plan;
  }

  /** The stores now hold these writes: see PartitionMemory.durable. */
  durable(
    written: Pick<FlushPlan, "accountWrites" | "ledgerWrites" | "registryWrites" | "projections">,
  ): void {
    for (const projection of written.projections) {
      if (projection.sharedKey !== undefined) this.deps.knownShared.add(projection.sharedKey);
    }
    this.memory.durable([...written.accountWrites, ...written.ledgerWrites, ...written.registryWrites], {
      source: this.placement.source,
      partition: this.partition,
    });
  }

  /** The flush did not happen (or may have half happened): forget memory, reload from the stores next time. */
  reset(): void {
    this.cold = true;
    this.fromStores = true;
    this.memory.clear();
  }

  private async planUnsafe(messages: readonly InputMessage[]): Promise<FlushPlan> {
    const plan = this.emptyPlan(messages);
    const lap = stopwatch();
    const decoded = withoutIo(() => {
      const items: Decoded[] = [];
      for (const message of messages) {
        const item = this.decode(message, plan);
        if (item !== undefined) items.push(item);
      }
      return items;
    });
    plan.timings.decode = lap();
    const due = await this.dueForTicks(decoded);
    await this.loadMissing(decoded, due);
    plan.timings.load = lap();
    withoutIo(() => this.applyLoaded(decoded, plan, lap));
    return plan;
  }

  /** The part of planning with no I/O: every account the records need is in memory. */
  private applyLoaded(decoded: readonly Decoded[], plan: FlushPlan, lap: () => number): void {
    const readable = decoded.filter((item) => this.readable(item, plan));
    // A tick has no account of its own: which accounts it re-applies to is decided per account (applyTick).
    const fresh = readable.filter(
      (item) =>
        item.record.type === "tick" ||
        !isAtOrBelow(this.memory.accounts.get(item.key)!.stored, this.watermarkOf(item)),
    );
    plan.stats.replayedSkipped = readable.length - fresh.length;
    const lettersBefore = plan.stats.deadLettered;
    const touched = this.apply(fresh, plan);
    plan.timings.apply = lap();

    this.planWrites(touched, plan);
    // A record the rules refuse went through the core but is counted dead-lettered, not applied, so
    // consumed = applied + replay-skipped + dead-lettered holds record by record.
    plan.stats.applied = fresh.length - (plan.stats.deadLettered - lettersBefore);
    plan.timings.project = lap();
  }

  /**
   * Applies the fresh records to memory; returns the accounts they changed, with their new states.
   * Runs of account records go to the core together; each tick alone, with the accounts it is due for.
   */
  private apply(fresh: readonly Decoded[], plan: FlushPlan): Map<string, AccountState> {
    const touched = new Map<string, AccountState>();
    /** Accounts a tick was due for but left unchanged: their registry entry is corrected all the same. */
    const checked = new Map<string, AccountState>();
    const outputs: Output[] = [];
    for (let start = 0; start < fresh.length; ) {
      const item = fresh[start]!;
      if (item.record.type === "tick") {
        this.applyTick(item, touched, checked, outputs);
        start++;
        continue;
      }
      let end = start;
      while (end < fresh.length && fresh[end]!.record.type !== "tick") end++;
      this.applyRun(fresh.slice(start, end), touched, outputs, plan);
      start = end;
    }
    const messagesByOffset = new Map(fresh.map((item) => [item.position.offset, item.message]));
    for (const output of outputs) {
      const position = (output as { seq?: unknown }).seq as LogPosition;
      this.route(output, position, messagesByOffset.get(position.offset)!, plan);
    }
    plan.projections = projectionWrites(
      touched,
      outputs,
      this.deps.knownShared,
      this.memory.pauses,
    ) satisfies ProjectionWrite[];
    for (const [key, account] of touched) checked.set(key, account);
    this.noteHolders(checked, fresh);
    return touched;
  }

  private applyRun(
    run: readonly Decoded[],
    touched: Map<string, AccountState>,
    outputs: Output[],
    plan: FlushPlan,
  ) {
    const state = { accounts: {} as Record<string, AccountState> };
    const lastOffset = new Map<string, bigint>();
    for (const item of run) {
      const owned = this.memory.accounts.touch(item.key);
      if (owned.body !== undefined) state.accounts[item.key] = owned.body;
      lastOffset.set(item.key, BigInt(item.position.offset));
    }
    const result = applyBatch(
      state,
      run.map((item) => ({ record: item.record, seq: item.position, logTimeMs: item.logTimeMs })),
      this.deps.billing,
    );
    for (const [key, offset] of lastOffset) {
      const owned = this.memory.accounts.get(key)!;
      const next = result.state.accounts[key];
      if (next === undefined || next === owned.body) continue;
      this.noteForgotten(key, owned.body, next, plan);
      owned.body = next;
      // The last record of the account in this batch, applied or not: a replay skips up to here.
      owned.pendingWm = offset;
      touched.set(key, next);
    }
    // A run holds no tick, so none of its outputs is a refused tick: all are account outputs.
    outputs.push(...(result.outputs as Output[]));
  }

  /**
   * A tick expires the holds of the accounts it is due for (hold-registry.ts): every account of the
   * partition whose earliest hold it passes, loaded if it was not in memory, except an account whose
   * document already holds this tick (its watermark is at or past it: the tick was applied to it).
   */
  private applyTick(
    item: Decoded,
    touched: Map<string, AccountState>,
    checked: Map<string, AccountState>,
    outputs: Output[],
  ): void {
    const tick = item.record as TickRecord;
    const at = this.watermarkOf(item);
    const state = { accounts: {} as Record<string, AccountState> };
    for (const entry of dueAccounts(this.registryBuckets(), epochMs(tick.occurred_at))) {
      const owned = this.memory.accounts.get(entry.account_key);
      if (owned?.body === undefined || isAtOrBelow(owned.stored, at)) continue;
      state.accounts[entry.account_key] = owned.body;
    }
    const result = applyBatch(
      state,
      [{ record: tick, seq: item.position, logTimeMs: item.logTimeMs }],
      this.deps.billing,
    );
    for (const key in state.accounts) {
      const owned = this.memory.accounts.get(key)!;
      const next = result.state.accounts[key];
      if (next === undefined || next === owned.body) {
        checked.set(key, owned.body!);
        continue;
      }
      owned.body = next;
      owned.pendingWm = at.offset;
      touched.set(key, next);
    }
    outputs.push(...(result.outputs as Output[]));
  }

  /** The partition's registry of accounts a tick would change, after the batch changed some of them. */
  private noteHolders(touched: ReadonlyMap<string, AccountState>, fresh: readonly Decoded[]): void {
    const owned = this.memory.registry;
    const last = fresh[fresh.length - 1];
    if (owned === undefined || last === undefined) return;
    for (const [bucket, body] of updateRegistry(this.registryBuckets(), touched, this.deps.billing)) {
      owned[bucket]!.body = body;
      owned[bucket]!.pendingWm = BigInt(last.position.offset);
    }
  }

  /** The registry's buckets as they are in memory (a bucket that cannot be read counts as empty). */
  private registryBuckets(): HoldRegistry[] {
    return Array.from(
      { length: REGISTRY_BUCKETS },
      (_, bucket) => this.memory.registry?.[bucket]?.body ?? emptyRegistry(this.partition, bucket),
    );
  }

  /**
   * The registry, loaded once per worker (a new owner's first batch), and the accounts the batch's
   * ticks are due for.
   */
  private async dueForTicks(items: readonly Decoded[]): Promise<HoldRegistryEntry[]> {
    if (this.memory.registry === undefined) this.memory.registry = await this.loadRegistry();
    let latest = Number.NEGATIVE_INFINITY;
    for (const item of items)
      if (item.record.type === "tick") latest = Math.max(latest, epochMs(item.record.occurred_at));
    if (latest === Number.NEGATIVE_INFINITY) return [];
    return dueAccounts(this.registryBuckets(), latest);
  }

  /**
   * The partition's registry buckets, in one round trip. A bucket never written takes its accounts from
   * the document a processor before buckets wrote, if any (its first write then stores them).
   */
  private async loadRegistry(): Promise<Owned<HoldRegistry>[]> {
    const { source } = this.placement;
    const refs = Array.from({ length: REGISTRY_BUCKETS }, (_, bucket) =>
      this.deps.registry.refOf(source, this.partition, bucket),
    );
    const legacyRef = this.deps.registry.legacyRefOf(source, this.partition);
    const loaded = await this.deps.registry.load([...refs, legacyRef]);
    const legacy = this.readableRegistry(legacyRef, loaded.get(legacyRef)!);
    const fromLegacy = legacy === undefined ? undefined : splitLegacy(legacy);
    return refs.map((ref, bucket) => {
      const doc = loaded.get(ref)!;
      const body = doc.body === undefined && doc.invalid === undefined ? fromLegacy?.[bucket] : undefined;
      return { ref, body: body ?? this.readableRegistry(ref, doc), stored: doc.wm, pendingWm: undefined };
    });
  }

  private readableRegistry(ref: DocRef, doc: LoadedDoc<HoldRegistry>): HoldRegistry | undefined {
    if (doc.invalid === undefined) return doc.body;
    this.deps.logger.error(
      { document: `${ref.namespace}/${ref.id}`, problem: doc.invalid },
      "hold registry cannot be read: holds of idle accounts it lists expire only at their own next record",
    );
    return undefined;
  }

  /** Budget states, account and ledger writes, the cost watch, and the size checks of a plan. */
  private planWrites(touched: ReadonlyMap<string, AccountState>, plan: FlushPlan): void {
    for (const [key, account] of touched) {
      plan.budgetStates.push(budgetStateOf(account));
      plan.accountWrites.push(pendingWrite(this.memory.accounts.get(key)!));
    }
    if (plan.usage.length > 0) {
      this.deps.costWatch.refresh();
      plan.budgetEvents.push(
        ...this.deps.costWatch.check(
          plan.usage.map((item) => item.outcome),
          touched,
        ),
      );
    }
    plan.ledgerWrites = this.memory.ledgers.pendingWrites() satisfies PendingWrite<unknown>[];
    plan.registryWrites = (this.memory.registry ?? [])
      .filter((bucket) => bucket.pendingWm !== undefined)
      .map((bucket) => pendingWrite(bucket));
    checkSizes(plan, this.deps.maxStateMessageBytes);
  }

  /**
   * Ids the dedupe cap forgot inside the horizon: counted in the plan (agentmeter_dedupe_ids_forgotten_total
   * once durable) every time, logged once per account (an account at its cap forgets on every batch).
   */
  private noteForgotten(key: string, before: AccountState | undefined, after: AccountState, plan: FlushPlan) {
    const forgotten = (after.dedupe.forgotten_in_horizon ?? 0) - (before?.dedupe.forgotten_in_horizon ?? 0);
    if (forgotten <= 0) return;
    plan.stats.dedupeForgotten += forgotten;
    if (!dedupeNoticesOf(this.deps.logger).first(key)) return;
    this.deps.logger.warn(
      { account: key, forgotten, cap: this.deps.billing.dedupe.max_entries },
      "dedupe cap reached: record ids inside the horizon forgotten (a re-send of one would count again); logged once per account, agentmeter_dedupe_ids_forgotten_total counts every one",
    );
  }

  private emptyPlan(messages: readonly InputMessage[]): FlushPlan {
    const plan = emptyPlan(
      this.placement.source,
      this.partition,
      { first: messages[0]?.offset, last: messages[messages.length - 1]?.offset },
      this.deps.now().toISOString(),
    );
    plan.stats.consumed = messages.length;
    return plan;
  }

  private kafkaPosition(message: InputMessage): LogPosition {
    return { topic: this.topic, partition: this.partition, offset: message.offset };
  }

  private watermarkOf(item: Decoded): Watermark {
    return { topic: this.placement.source, partition: this.partition, offset: BigInt(item.position.offset) };
  }

  private reject(plan: FlushPlan, message: InputMessage, code: ErrorCode, reason: string): undefined {
    // One letter per record: a tick refused by each account it reached is still one record.
    const last = plan.deadLetters.at(-1);
    if (
      last !== undefined &&
      last.source.partition === this.partition &&
      last.source.offset === message.offset
    )
      return undefined;
    plan.deadLetters.push(
      deadLetter(
        this.kafkaPosition(message),
        message.key,
        message.value,
        code,
        reason,
        this.deps.now().toISOString(),
        this.placement.source,
      ),
    );
    plan.stats.deadLettered++;
    return undefined;
  }

  private decode(message: InputMessage, plan: FlushPlan): Decoded | undefined {
    const admitted = admitMessage(message, this.partition, {
      maxRecordBytes: this.deps.maxRecordBytes,
      partitionCounts: this.placement.partitionCounts,
      creditPolicy: this.deps.creditPolicy,
    });
    if (!admitted.ok) return this.reject(plan, message, admitted.code, admitted.reason);
    return {
      position: this.kafkaPosition(message),
      record: admitted.record,
      key: admitted.key,
      message,
      logTimeMs: admitted.logTimeMs,
    };
  }

  /** A record whose account or app ledger cannot be read is dead-lettered: fixing the document resumes billing. */
  private readable(item: Decoded, plan: FlushPlan): boolean {
    const { record } = item;
    if (record.type === "tick") return true;
    const app = record.level === "app_usage" ? record.enterprise_id : undefined;
    const why =
      this.memory.accounts.invalid.get(item.key) ??
      (app === undefined ? undefined : this.memory.ledgers.invalid.get(app));
    if (why === undefined) return true;
    this.reject(plan, item.message, "DOCUMENT_INVALID", why);
    return false;
  }

  /** Loads, in one round trip per collection, the accounts and ledgers this batch needs that are not in memory. */
  private async loadMissing(items: readonly Decoded[], due: readonly HoldRegistryEntry[]): Promise<void> {
    const { accounts, ledgers } = this.memory;
    accounts.invalid.clear();
    ledgers.invalid.clear();
    const wantedAccounts = new Map<string, DocRef>();
    const wantedLedgers = new Map<string, DocRef>();
    const apps = new Set<string>();
    for (const entry of due)
      if (!accounts.has(entry.account_key))
        wantedAccounts.set(entry.account_key, this.deps.accounts.refOf(entry.address));
    for (const { record, key } of items) {
      if (record.type === "tick") continue;
      if (!accounts.has(key) && !wantedAccounts.has(key))
        wantedAccounts.set(key, this.deps.accounts.refOf(record));
      if (record.level !== "app_usage") continue;
      apps.add(record.enterprise_id);
      if (!ledgers.has(record.enterprise_id) && !wantedLedgers.has(record.enterprise_id))
        wantedLedgers.set(
          record.enterprise_id,
          this.deps.ledgers.refOf(record.enterprise_id, this.placement.source, this.partition),
        );
    }
    // The rest of the plan runs without waiting: only while the stores answer can a write-behind cycle
    // become durable and evict, and the documents this batch found in memory must still be there after.
    // The accounts a tick is due for are the idle ones, the first a cycle would drop.
    accounts.pin(items.map((item) => item.key));
    accounts.pin(due.map((entry) => entry.account_key));
    ledgers.pin(apps);
    let loadedAccounts: Map<DocRef, LoadedDoc<AccountState>>;
    let loadedLedgers: Map<DocRef, LoadedDoc<RevenueLedger>>;
    try {
      await Promise.all([...apps].map((app) => this.deps.accounts.prepareApp(app)));
      [loadedAccounts, loadedLedgers] = await Promise.all([
        this.deps.accounts.load([...wantedAccounts.values()]),
        this.deps.ledgers.load([...wantedLedgers.values()]),
      ]);
    } finally {
      accounts.unpin();
      ledgers.unpin();
    }
    for (const [key, ref] of wantedAccounts) {
      const doc = loadedAccounts.get(ref)!;
      const why =
        doc.invalid ?? (doc.body === undefined ? undefined : this.deps.accounts.problemOf(doc.body, key));
      if (why !== undefined) {
        accounts.invalid.set(key, this.invalidDocument(ref, why));
        continue;
      }
      if (doc.body !== undefined) this.memory.pauses.loaded(key, doc.body.chats);
      accounts.set(key, { ref, body: doc.body, stored: doc.wm, pendingWm: undefined });
    }
    for (const [app, ref] of wantedLedgers) {
      const doc = loadedLedgers.get(ref)!;
      if (doc.invalid !== undefined) {
        ledgers.invalid.set(app, this.invalidDocument(ref, doc.invalid));
        continue;
      }
      ledgers.set(app, { ref, body: doc.body, stored: doc.wm, pendingWm: undefined });
    }
  }

  private invalidDocument(ref: DocRef, why: string): string {
    const where = `${ref.namespace}/${ref.id}`;
    this.deps.logger.error(
      { document: where, problem: why },
      "stored document cannot be read: its records are dead-lettered until it is fixed",
    );
    return `${where}: ${why}`;
  }

  private route(output: Output, position: LogPosition, message: InputMessage, plan: FlushPlan): void {
    switch (output.kind) {
      case "usage_outcome":
        plan.usage.push({ position: { ...position, topic: this.placement.source }, outcome: output });
        this.addRevenue(output, BigInt(position.offset));
        return;
      case "budget_event":
        plan.budgetEvents.push(withoutPosition(output));
        return;
      case "hold_decision":
        plan.holdDecisions.push(withoutPosition(output));
        return;
      case "session_summary":
        plan.sessionSummaries.push(output);
        return;
      case "duplicate_ignored":
        plan.stats.duplicates++;
        return;
      case "rejected":
        this.reject(plan, message, output.code, output.reason);
        return;
      case "adjustment":
        plan.adjustments.push({
          position: { ...position, topic: this.placement.source },
          adjustment: output,
        });
        this.addRevenue(output, BigInt(position.offset));
        return;
      case "credit_applied":
      case "session_event":
        return;
      default:
        // A tick the rules refuse (its event time too far from its log time) belongs to no account.
        if ((output as { kind: string }).kind === "tick_rejected") {
          const refused = output as unknown as { code: ErrorCode; reason: string };
          this.reject(plan, message, refused.code, refused.reason);
        }
        return;
    }
  }

  private addRevenue(outcome: LedgerEntry, offset: bigint): void {
    if (!earnsRevenue(outcome)) return;
    const owned = this.memory.ledgers.touch(outcome.enterprise_id);
    // A ledger is written before its accounts, so it may already hold records an account does not.
    if (isAtOrBelow(owned.stored, { topic: this.placement.source, partition: this.partition, offset }))
      return;
    owned.body = addToLedger(
      owned.body ?? emptyLedger(outcome.enterprise_id, outcome.mozaiks_user_id, this.partition),
      outcome,
    );
    owned.pendingWm = offset;
  }
}

/**
 * An output as its schema has it (strict), for the topics others read: the core's outputs carry the log
 * position they came from (`seq`), which is the processor's, not part of the event or the answer.
 */
function withoutPosition<T extends object>(output: T): T {
  const { seq: _position, ...published } = output as T & { seq?: unknown };
  return published as T;
}

/** Accounts remembered as already logged for the dedupe cap, per processor. */
export const DEDUPE_NOTICES_MAX = 10_000;

/**
 * Keys seen at least once, at most `max` of them: past it the least recently seen is forgotten (and would
 * count as first again), so memory stays bounded however many accounts reach their cap.
 */
export class OncePerKey {
  private readonly keys = new Set<string>();

  constructor(private readonly max: number) {}

  get size(): number {
    return this.keys.size;
  }

  /** True the first time `key` is seen; every call marks it as just seen. */
  first(key: string): boolean {
    const seen = this.keys.delete(key);
    this.keys.add(key);
    if (!seen && this.keys.size > this.max) this.keys.delete(this.keys.values().next().value!);
    return !seen;
  }
}

/**
 * The workers of one processor share its logger (and a new worker is made after each rebalance), so the
 * accounts already logged are kept by logger: once per account for the processor's lifetime.
 */
const dedupeNotices = new WeakMap<Logger, OncePerKey>();

function dedupeNoticesOf(logger: Logger): OncePerKey {
  let notices = dedupeNotices.get(logger);
  if (notices === undefined) {
    notices = new OncePerKey(DEDUPE_NOTICES_MAX);
    dedupeNotices.set(logger, notices);
  }
  return notices;
}

/**
 * Runs a part of planning that does no I/O, its errors as CoreFailure. A refusal (a document past the
 * store's limit, RECORD_STORE_REJECTED) is the processor's own answer and passes as it is; any other
 * error, typed or not, is the core failing on records it should have billed or refused with an output.
 */
function withoutIo<T>(work: () => T): T {
  try {
    return work();
  } catch (error) {
    throw isAgentmeterError(error, "RECORD_STORE_REJECTED") ? error : new CoreFailure(error);
  }
}

/** Milliseconds since the last call (or since it was made). */
function stopwatch(): () => number {
  let mark = performance.now();
  return () => {
    const now = performance.now();
    const spent = Math.round(now - mark);
    mark = now;
    return spent;
  };
}
