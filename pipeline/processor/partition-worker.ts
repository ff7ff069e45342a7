import type { Document } from "mongodb";
import type {
  BudgetEvent,
  DeadLetter,
  InputRecord,
  Output,
  SessionSummary,
  UsageOutcome,
} from "../../schemas/index.ts";
import { accountKeyOf, decodeRecord } from "../../schemas/index.ts";
import type { LogPosition, PositionedOutcome } from "../../sinks/clickhouse/usage-events.ts";
import { accountDocRef } from "../../sinks/mongo/accounts.ts";
import type { IndexRegistry } from "../../sinks/mongo/indexes.ts";
import type { MongoLayout } from "../../sinks/mongo/layout.ts";
import { PauseDocuments, type ProjectionWrite, projectionWrites } from "../../sinks/mongo/projections.ts";
import { emptyLedger, type RevenueLedger, revenueDocRef } from "../../sinks/mongo/revenue.ts";
import { type DocRef, loadDocs, type PendingWrite } from "../../sinks/mongo/watermarked-store.ts";
import { type AccountState, applyBatch, type BillingConfig, budgetStateOf } from "../core/index.ts";
import type { CostWatch } from "./cost-watch.ts";
import { deadLetter } from "./dead-letter.ts";

/** A Kafka message as the worker needs it (kafkajs' KafkaMessage, narrowed). */
export interface InputMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

interface Owned<T> {
  ref: DocRef;
  body: T | undefined;
  /** Offset of the last record in the stored document (-1: no document yet). */
  storedWm: bigint;
  /** Offset of the last record applied in memory but not yet flushed. */
  pendingWm: bigint | undefined;
}

/** Everything one batch must write, in the order the flush writes it. */
export interface FlushPlan {
  topic: string;
  partition: number;
  deadLetters: DeadLetter[];
  budgetEvents: BudgetEvent[];
  budgetStates: ReturnType<typeof budgetStateOf>[];
  sessionSummaries: SessionSummary[];
  usage: PositionedOutcome[];
  ledgerWrites: PendingWrite<RevenueLedger & Document>[];
  projections: ProjectionWrite[];
  accountWrites: PendingWrite<AccountState & Document>[];
  /** The offset to commit once everything above is durable (last offset + 1). */
  commitOffset: string;
  stats: {
    consumed: number;
    applied: number;
    replayedSkipped: number;
    deadLettered: number;
    duplicates: number;
  };
  /** Milliseconds of each part of planning: `load` waits on MongoDB, the rest is this thread's CPU. */
  timings: { decode: number; load: number; apply: number; project: number };
}

export interface WorkerDeps {
  layout: MongoLayout;
  indexes: IndexRegistry;
  /** Shared documents (apps, workflows) this process has written; see projectionWrites. */
  knownShared: Set<string>;
  costWatch: CostWatch;
  billing: BillingConfig;
  maxRecordBytes: number;
  /** Wall clock for the dead-letter envelope only; billing never reads it. */
  now: () => Date;
}

interface Decoded {
  position: LogPosition;
  record: InputRecord;
  key: string;
  message: InputMessage;
}

/**
 * The state of one owned input partition: the accounts and revenue ledgers it has touched, held in
 * memory so a record costs no database round trip, and written once per flush.
 */
export class PartitionWorker {
  private readonly accounts = new Map<string, Owned<AccountState>>();
  private readonly ledgers = new Map<string, Owned<RevenueLedger>>();
  /** Open chats that have, or may have, a pause document (see `PauseDocuments`). */
  private readonly pauseDocuments = new PauseDocuments();

  constructor(
    readonly topic: string,
    readonly partition: number,
    private readonly deps: WorkerDeps,
  ) {}

  get cachedAccounts(): number {
    return this.accounts.size;
  }

  /** Decodes, applies and returns what to write. The in-memory state moves ahead; call `committed` or `reset` after the flush. */
  async plan(messages: readonly InputMessage[]): Promise<FlushPlan> {
    const plan = this.emptyPlan(messages);
    let mark = performance.now();
    const lap = (): number => {
      const now = performance.now();
      const spent = Math.round(now - mark);
      mark = now;
      return spent;
    };
    const decoded: Decoded[] = [];
    for (const message of messages) {
      const item = this.decode(message, plan);
      if (item !== undefined) decoded.push(item);
    }
    plan.timings.decode = lap();
    await this.loadMissing(decoded);
    plan.timings.load = lap();

    const fresh = decoded.filter(
      (item) => BigInt(item.position.offset) > this.accounts.get(item.key)!.storedWm,
    );
    plan.stats.replayedSkipped = decoded.length - fresh.length;
    const state = { accounts: {} as Record<string, AccountState> };
    for (const item of fresh) {
      const body = this.accounts.get(item.key)!.body;
      if (body !== undefined) state.accounts[item.key] = body;
    }
    const result = applyBatch(
      state,
      fresh.map((item) => ({ record: item.record, seq: item.position })),
      this.deps.billing,
    );
    const touched = new Set<string>();
    for (const item of fresh) {
      const owned = this.accounts.get(item.key)!;
      const next = result.state.accounts[item.key];
      if (next !== undefined && next !== owned.body) {
        owned.body = next;
        owned.pendingWm = BigInt(item.position.offset);
        touched.add(item.key);
      }
    }
    const messagesByOffset = new Map(fresh.map((item) => [item.position.offset, item.message]));
    for (const output of result.outputs) {
      const position = output.seq as LogPosition;
      this.route(output, position, messagesByOffset.get(position.offset)!, plan);
    }

    plan.timings.apply = lap();
    const touchedStates = new Map<string, AccountState>();
    for (const key of touched) {
      const owned = this.accounts.get(key)!;
      touchedStates.set(key, owned.body!);
      plan.budgetStates.push(budgetStateOf(owned.body!));
      plan.accountWrites.push(this.pendingWrite(owned) as PendingWrite<AccountState & Document>);
    }
    if (plan.usage.length > 0) {
      this.deps.costWatch.refresh();
      plan.budgetEvents.push(
        ...this.deps.costWatch.check(
          plan.usage.map((item) => item.outcome),
          touchedStates,
        ),
      );
    }
    plan.projections = projectionWrites(
      this.deps.layout,
      touchedStates,
      result.outputs,
      this.deps.knownShared,
      this.pauseDocuments,
    );
    for (const owned of this.ledgers.values()) {
      if (owned.pendingWm !== undefined)
        plan.ledgerWrites.push(this.pendingWrite(owned) as PendingWrite<RevenueLedger & Document>);
    }
    plan.stats.applied = fresh.length;
    plan.timings.project = lap();
    return plan;
  }

  /** The flush made the plan durable: the stored watermarks move up to what was written. */
  committed(plan: FlushPlan): void {
    for (const projection of plan.projections) {
      if (projection.sharedKey !== undefined) this.deps.knownShared.add(projection.sharedKey);
    }
    for (const owned of [...this.accounts.values(), ...this.ledgers.values()]) {
      if (owned.pendingWm !== undefined) owned.storedWm = owned.pendingWm;
      owned.pendingWm = undefined;
    }
  }

  /** The flush did not happen (or may have half happened): forget memory, reload from the stores next time. */
  reset(): void {
    this.accounts.clear();
    this.ledgers.clear();
    this.pauseDocuments.clear();
  }

  private emptyPlan(messages: readonly InputMessage[]): FlushPlan {
    const last = messages[messages.length - 1];
    return {
      topic: this.topic,
      partition: this.partition,
      deadLetters: [],
      budgetEvents: [],
      budgetStates: [],
      sessionSummaries: [],
      usage: [],
      ledgerWrites: [],
      projections: [],
      accountWrites: [],
      commitOffset: last === undefined ? "0" : (BigInt(last.offset) + 1n).toString(),
      stats: { consumed: messages.length, applied: 0, replayedSkipped: 0, deadLettered: 0, duplicates: 0 },
      timings: { decode: 0, load: 0, apply: 0, project: 0 },
    };
  }

  private decode(message: InputMessage, plan: FlushPlan): Decoded | undefined {
    const position = { topic: this.topic, partition: this.partition, offset: message.offset };
    const failedAt = this.deps.now().toISOString();
    if (message.value === null) {
      plan.deadLetters.push(
        deadLetter(position, message.key, null, "RECORD_NOT_JSON", "message has no value", failedAt),
      );
      return undefined;
    }
    const result = decodeRecord(message.value, { maxBytes: this.deps.maxRecordBytes });
    if (!result.ok) {
      plan.deadLetters.push(
        deadLetter(position, message.key, message.value, result.code, result.reason, failedAt),
      );
      return undefined;
    }
    const key = accountKeyOf(result.record);
    // Per-account order rests on the key: a record under another key could overtake its account's records.
    if (message.key === null || message.key.toString("utf8") !== key) {
      const got = message.key === null ? "no key" : `key ${JSON.stringify(message.key.toString("utf8"))}`;
      plan.deadLetters.push(
        deadLetter(
          position,
          message.key,
          message.value,
          "RECORD_KEY_MISMATCH",
          `${got}, expected ${key}`,
          failedAt,
        ),
      );
      return undefined;
    }
    return { position, record: result.record, key, message };
  }

  /** Loads, in one round trip per collection, the accounts and ledgers this batch needs that are not in memory. */
  private async loadMissing(items: readonly Decoded[]): Promise<void> {
    const wanted = new Map<string, { ref: DocRef; target: Map<string, Owned<never>>; key: string }>();
    for (const { record, key } of items) {
      if (!this.accounts.has(key) && !wanted.has(`a:${key}`)) {
        wanted.set(`a:${key}`, {
          ref: accountDocRef(this.deps.layout, record),
          target: this.accounts as Map<string, Owned<never>>,
          key,
        });
      }
      if (
        record.level === "app_usage" &&
        !this.ledgers.has(record.enterprise_id) &&
        !wanted.has(`l:${record.enterprise_id}`)
      ) {
        wanted.set(`l:${record.enterprise_id}`, {
          ref: revenueDocRef(this.deps.layout, record.enterprise_id, this.topic, this.partition),
          target: this.ledgers as Map<string, Owned<never>>,
          key: record.enterprise_id,
        });
      }
    }
    const newApps = new Set<string>();
    for (const { record } of items) if (record.level === "app_usage") newApps.add(record.enterprise_id);
    await Promise.all([...newApps].map((app) => this.deps.indexes.app(app)));
    const byCollection = new Map<string, { ref: DocRef; target: Map<string, Owned<never>>; key: string }[]>();
    for (const item of wanted.values()) {
      const ns = `${item.ref.collection.dbName}.${item.ref.collection.collectionName}`;
      const group = byCollection.get(ns);
      if (group === undefined) byCollection.set(ns, [item]);
      else group.push(item);
    }
    await Promise.all(
      [...byCollection.values()].map(async (group) => {
        const loaded = await loadDocs<never>(
          group[0]!.ref.collection,
          group.map((item) => item.ref.id),
        );
        for (const item of group) {
          const doc = loaded.get(item.ref.id)!;
          if (item.target === this.accounts && doc.body !== undefined)
            this.pauseDocuments.loaded(item.key, (doc.body as AccountState).chats);
          item.target.set(item.key, {
            ref: item.ref,
            body: doc.body,
            storedWm: doc.wmOffset,
            pendingWm: undefined,
          });
        }
      }),
    );
  }

  private route(output: Output, position: LogPosition, message: InputMessage, plan: FlushPlan): void {
    switch (output.kind) {
      case "usage_outcome":
        plan.usage.push({ position, outcome: output });
        this.addRevenue(output, BigInt(position.offset));
        return;
      case "budget_event":
        plan.budgetEvents.push(output);
        return;
      case "session_summary":
        plan.sessionSummaries.push(output);
        return;
      case "duplicate_ignored":
        plan.stats.duplicates++;
        return;
      case "rejected":
        plan.deadLetters.push(
          deadLetter(
            position,
            message.key,
            message.value,
            output.code,
            output.reason,
            this.deps.now().toISOString(),
          ),
        );
        return;
      case "credit_applied":
      case "session_event":
        return;
    }
  }

  private addRevenue(outcome: UsageOutcome, offset: bigint): void {
    if (outcome.level !== "app_usage" || outcome.billed_micros === 0n) return;
    const owned = this.ledgers.get(outcome.enterprise_id)!;
    // A ledger is written before its accounts, so it may already hold records an account does not.
    if (offset <= owned.storedWm) return;
    const ledger = owned.body ?? emptyLedger(outcome.enterprise_id, outcome.mozaiks_user_id, this.partition);
    owned.body = {
      ...ledger,
      records: ledger.records + 1,
      billed_micros: ledger.billed_micros + outcome.billed_micros,
      creator_share_micros: ledger.creator_share_micros + outcome.creator_share_micros,
      platform_fee_micros: ledger.platform_fee_micros + outcome.platform_fee_micros,
    };
    owned.pendingWm = offset;
  }

  private pendingWrite<T>(owned: Owned<T>): PendingWrite<T> {
    return { ref: owned.ref, body: owned.body!, loadedWm: owned.storedWm, newWm: owned.pendingWm! };
  }
}
