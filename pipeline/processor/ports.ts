/**
 * What the processor reads and writes, as interfaces: the planner and the flush are written against
 * these, and the MongoDB, ClickHouse and Kafka adapters in sinks/ implement them. A port speaks in the
 * processor's terms (log positions, documents by reference, records' outputs), never in a driver's.
 */
import type {
  Adjustment,
  BudgetEvent,
  BudgetState,
  DeadLetter,
  HoldDecision,
  SessionSummary,
  UsageOutcome,
} from "../../schemas/index.ts";
import type { AccountState } from "../core/index.ts";
import type { RevenueLedger } from "../core/revenue-ledger.ts";
import type { HoldRegistry } from "./hold-registry.ts";

/** Where a record sits in the input log; carried into ClickHouse so a partition's progress can be read back. */
export interface LogPosition {
  topic: string;
  partition: number;
  offset: string;
}

export interface PositionedOutcome {
  position: LogPosition;
  outcome: UsageOutcome;
}

/** A void or refund with the log position of the correction record. */
export interface PositionedAdjustment {
  position: LogPosition;
  adjustment: Adjustment;
}

/**
 * Where the last record applied to a document sat in the log. A watermark is a position, not an offset:
 * offsets of different partitions (or of a re-created topic) say nothing about each other, so a record
 * is a replay only when it comes from the same topic and partition at or below the stored offset.
 */
export interface Watermark {
  topic: string;
  partition: number;
  offset: bigint;
}

export function samePosition(a: Watermark | null, b: Watermark | null): boolean {
  if (a === null || b === null) return a === b;
  return a.topic === b.topic && a.partition === b.partition && a.offset === b.offset;
}

/** True when a record at `at` is already in a document whose watermark is `wm`. */
export function isAtOrBelow(wm: Watermark | null, at: Watermark): boolean {
  return wm !== null && wm.topic === at.topic && wm.partition === at.partition && at.offset <= wm.offset;
}

export function formatPosition(position: Watermark | null): string {
  return position === null ? "none" : `${position.topic}/${position.partition}@${position.offset}`;
}

/**
 * A document of a watermarked store, by the store's own names: `namespace` (which collection) is opaque
 * to the processor, which only groups and coalesces writes by it.
 */
export interface DocRef {
  readonly namespace: string;
  readonly id: string;
}

export function docKey(ref: DocRef): string {
  return `${ref.namespace}/${ref.id}`;
}

export type LoadedDoc<T> =
  | {
      body: T | undefined;
      /** null when the document does not exist yet. */
      wm: Watermark | null;
      invalid?: undefined;
    }
  /** A document is there but agentmeter cannot read it (foreign or corrupt): why, for the error. */
  | { body: undefined; wm: null; invalid: string };

export interface PendingWrite<T> {
  ref: DocRef;
  body: T;
  /** The watermark the writer loaded (null: the document did not exist): the compare-and-set's condition. */
  loaded: Watermark | null;
  /** The offset of the last record this write holds, in the flush's topic and partition. */
  newWm: bigint;
  /**
   * The writer's in-memory copy of the document, whose `stored` is what the last durable write left.
   * A write-behind cycle takes its compare-and-set condition from here, not from `loaded`: a plan made
   * while the previous cycle was in flight loaded the position that cycle has since moved.
   */
  owner?: { stored: Watermark | null; pendingWm: bigint | undefined };
}

/** The source partition a flush writes for: the watermark's topic and partition. */
export interface SourcePartition {
  topic: string;
  partition: number;
}

/**
 * Documents that one input partition owns, each written as a whole with its watermark (compare-and-set on
 * the position its writer loaded): exactly-once effect without transactions.
 */
export interface WatermarkedStore<T> {
  /** Loads documents of one namespace by id (absent ones come back with `body` undefined). */
  load(refs: readonly DocRef[]): Promise<Map<DocRef, LoadedDoc<T>>>;
  /** Writes each document at its `newWm`; OWNERSHIP_LOST if another writer moved one since it was loaded. */
  write(writes: readonly PendingWrite<T>[], at: SourcePartition): Promise<void>;
}

/** The identity of an account, enough to find its document. */
export interface AccountAddress {
  level: "platform" | "app_usage";
  enterprise_id: string;
  mozaiks_user_id: string;
  platform_user_id?: string | null | undefined;
}

export interface AccountStore extends WatermarkedStore<AccountState> {
  refOf(address: AccountAddress): DocRef;
  /** Whatever an app's documents need before its first write (indexes), once per process. */
  prepareApp(enterpriseId: string): Promise<void>;
  /** Why a loaded body is not an account agentmeter can continue (undefined: it can). */
  problemOf(body: AccountState, accountKey: string): string | undefined;
}

export interface LedgerStore extends WatermarkedStore<RevenueLedger> {
  /** The ledger one source partition keeps for an app. */
  refOf(enterpriseId: string, source: string, partition: number): DocRef;
}

/** The hold registry of each source partition (hold-registry.ts). */
export interface HoldRegistryStore extends WatermarkedStore<HoldRegistry> {
  /** One bucket of the partition's registry. */
  refOf(source: string, partition: number, bucket: number): DocRef;
  /** The one document per partition written before buckets: read, never written. */
  legacyRefOf(source: string, partition: number): DocRef;
}

/**
 * Which documents a projection is, by meaning: the platform's, the workflow registry's, or one app's
 * (the store maps these to its collection names).
 */
export type ProjectionTarget =
  | { db: "platform"; collection: "sessions" | "enterprises" | "usage" }
  | { db: "workflow"; collection: "workflows" | "tokenSessions" | "chatPauses" | "tokenChats" }
  | { db: "app"; app: string; collection: "sessions" | "pausedChats" };

export function targetKey(target: ProjectionTarget): string {
  return target.db === "app" ? `app:${target.app}.${target.collection}` : `${target.db}.${target.collection}`;
}

/**
 * Read-side documents that are projections of account state or of single outputs (pause states,
 * sessions, chat summaries, apps, workflows, creators' usage). Each is an absolute value that depends
 * only on the records applied so far, so writing it again is harmless.
 */
export interface ProjectionWrite {
  target: ProjectionTarget;
  id: string;
  /** The whole document (projections of one account, which one partition owns). */
  doc?: Record<string, unknown>;
  /**
   * Or fields merged into a document many partitions touch (an app, a workflow). They hold only
   * facts that never change, so any partition may write them, in any order, once per process.
   */
  merge?: { set: Record<string, unknown> };
  /** For merges: the key to remember as written once the flush is durable. */
  sharedKey?: string;
  /** The document never changes once written (a finished session's summary): inserted, not upserted. */
  immutable?: boolean;
  /** Update the document only if it exists (a finished chat's pause document, if it ever had one). */
  ifExists?: boolean;
}

export interface ProjectionStore {
  write(writes: readonly ProjectionWrite[]): Promise<void>;
}

/** One flush's row of what it covered (sinks/clickhouse/partition-progress.ts). */
export interface FlushProgress {
  source: string;
  partition: number;
  firstOffset: string;
  lastOffset: string;
  consumed: number;
  applied: number;
  replayedSkipped: number;
  deadLettered: number;
  duplicates: number;
  flushedAt: string;
}

/** The raw usage log analysts query: one row per usage record, once per offset. */
export interface UsageLog {
  /** Appends the rows past the partition's watermark; returns how many were new. */
  append(source: string, partition: number, rows: readonly PositionedOutcome[]): Promise<number>;
  /** The same for voids and refunds, in a table of their own (the usage rows are never edited). */
  appendAdjustments(
    source: string,
    partition: number,
    rows: readonly PositionedAdjustment[],
  ): Promise<number>;
  appendProgress(progress: FlushProgress): Promise<void>;
  /** The highest offset stored for a source partition (-1: none), read afresh. */
  storedWatermark(source: string, partition: number): Promise<bigint>;
  /** Forget what is cached of a partition (revoked, or its memory dropped): the next owner reads afresh. */
  forget(source: string, partition: number): void;
  forgetAll(): void;
}

/** Finished sessions' summaries (a replay re-appends them identically; the store collapses repeats). */
export interface SummaryLog {
  append(source: string, partition: number, summaries: readonly SessionSummary[]): Promise<number>;
}

/** What agent runtimes and operators act on: dead letters, budget events, latest budget states. */
export interface Decisions {
  deadLetters: readonly DeadLetter[];
  budgetEvents: readonly BudgetEvent[];
  budgetStates: readonly BudgetState[];
  holdDecisions: readonly HoldDecision[];
}

/** Publishes decisions at least once; consumers see repeats as harmless (event ids, compacted states). */
export interface EventBus {
  publish(decisions: Decisions): Promise<void>;
}

/** Everything a flush writes to, in the order flush.ts writes it. */
export interface FlushTargets {
  bus: EventBus;
  usageLog: UsageLog;
  summaries: SummaryLog;
  ledgers: LedgerStore;
  registry: HoldRegistryStore;
  projections: ProjectionStore;
  accounts: AccountStore;
}
