import type { ErrorCode } from "../../schemas/errors.ts";
import type { Level, TopicRecord } from "../../schemas/index.ts";
import { type CreditAuthorization, creditAuthorization } from "../auth/signature.ts";
import {
  type AccountState,
  applyBatchInPlace,
  type BillingConfig,
  type BillingState,
  emptyState,
  type SequencedRecord,
  type SequencedTopicOutput,
} from "../core/index.ts";
import { emptyMap, ownValue } from "../core/own.ts";
import { earnsRevenue, type LedgerEntry, ledgerDelta } from "../core/revenue-ledger.ts";
import { admitMessage, type InputMessage } from "../processor/admit.ts";
import {
  ADJUSTMENT_FIELDS,
  type AdjustmentField,
  type Figures,
  REVENUE_FIELDS,
  type RevenueField,
  USAGE_FIELDS,
  type UsageField,
  zeroFigures,
} from "./figures.ts";
import { type ComparedDecision, comparedDecision, decisionKey } from "./hold-decisions.ts";

/** A Kafka message as the audit reads it: what the processor admits (pipeline/processor/admit.ts). */
export type TopicMessage = InputMessage;

export interface RecomputerOptions {
  /**
   * The input topic's partition counts the processor accepts (the current one, and any earlier one
   * whose records are still in the range). When given, a message whose partition is not its key's
   * murmur2 partition under any of them is skipped, as the processor dead-letters it
   * (RECORD_WRONG_PARTITION). When absent, no partition check.
   */
  partitionCounts?: readonly number[];
  /**
   * Who may send credit records, as the processor was configured (AGENTMETER_OPERATOR_SECRET): a credit
   * record without a valid signature is skipped, as the processor dead-letters it (RECORD_UNAUTHORIZED).
   * Default: unsigned credits accepted (development mode).
   */
  creditPolicy?: CreditAuthorization;
  /** Records applied per apply call (default RECOMPUTE_CHUNK). Any size gives the same state. */
  chunk?: number;
  /**
   * A tick reaches only the accounts that have had a record on the tick's partition, as each of the
   * processor's partitions keeps its own accounts (and hold registry). For a recomputer fed several
   * partitions whose accounts may span them (a partition count that changed: units.ts). Default: a tick
   * reaches every account of the state (a recomputer fed one partition).
   */
  ticksPerPartition?: boolean;
}

type SkipCount =
  | "skipped_undecodable"
  | "skipped_key_mismatch"
  | "skipped_wrong_partition"
  | "skipped_unauthorized";

/** Where a refused message is counted; every other refusal is a record that does not decode. */
const SKIP_COUNT: Partial<Record<ErrorCode, SkipCount>> = {
  RECORD_KEY_MISMATCH: "skipped_key_mismatch",
  RECORD_WRONG_PARTITION: "skipped_wrong_partition",
  RECORD_UNAUTHORIZED: "skipped_unauthorized",
};

/** The records of one account in the order applied: what explains any difference found on it. */
export interface AccountTrail {
  /** The partition of its first record. */
  partition: number;
  ids: string[];
  offsets: number[];
  /**
   * Each record's partition, once the account has records on more than one (a partition count that
   * changed); absent while all sit on `partition`.
   */
  partitions?: number[];
}

/**
 * Record ids and the account of each. A record id is unique per account, not across accounts (the
 * dedupe is per account), so an id alone does not name a record of an app: two of its accounts may
 * both have one `r1`. The accounts are kept once each, and every id points at its own.
 */
export interface AccountIds {
  ids: string[];
  /** The account of each of `ids`: its index in `accounts`. */
  accountOf: number[];
  /** The accounts of `ids`, each once, in the order first met. */
  accounts: string[];
}

/** Figures of one app at one level, as a ClickHouse table sums them. */
export interface AppLevelGroup<F extends string> extends AccountIds {
  enterprise_id: string;
  level: Level;
  figures: Figures<F>;
  /** record_ids of every record that must have a row in the table (and in accountOf, its account). */
  ids: string[];
}
export type UsageGroup = AppLevelGroup<UsageField>;
/** The voids and refunds applied, by the app and level of the account they corrected. */
export type AdjustmentGroup = AppLevelGroup<AdjustmentField>;

export interface AppRevenueExpected extends AccountIds {
  enterprise_id: string;
  figures: Figures<RevenueField>;
}

export function emptyAccountIds(): AccountIds {
  return { ids: [], accountOf: [], accounts: [] };
}

/**
 * Appends one record id of `account` to `list`; `index` is the list's accounts by key (kept beside the
 * list by whoever appends to it, so that it never crosses between threads).
 */
export function pushAccountId(
  list: AccountIds,
  index: Map<string, number>,
  account: string,
  recordId: string,
): void {
  let at = index.get(account);
  if (at === undefined) {
    at = list.accounts.length;
    list.accounts.push(account);
    index.set(account, at);
  }
  list.ids.push(recordId);
  list.accountOf.push(at);
}

/** The index pushAccountId needs for a list built elsewhere (another unit's, or a copy). */
export function accountIndexOf(list: AccountIds): Map<string, number> {
  return new Map(list.accounts.map((account, at) => [account, at]));
}

export interface RecomputeCounts {
  messages: number;
  records: number;
  skipped_undecodable: number;
  skipped_key_mismatch: number;
  /** Records on another partition than their key's (dead-lettered RECORD_WRONG_PARTITION by the processor). */
  skipped_wrong_partition: number;
  /** Credit records without a valid operator signature (dead-lettered RECORD_UNAUTHORIZED). */
  skipped_unauthorized: number;
  duplicates_ignored: number;
  rejected: number;
  usage_outcomes: number;
  hold_decisions: number;
}

/** What the billing core says the stores must hold, from the records read so far. */
export interface Expected {
  state: BillingState;
  /** Every hold decision the core made, by decisionKey: what the reply topic must hold. */
  holds: Map<string, ComparedDecision>;
  trails: Map<string, AccountTrail>;
  /** By `enterprise_id` + NUL + `level`. */
  usage: Map<string, UsageGroup>;
  /** By `enterprise_id` + NUL + `level`, as usage. */
  adjustments: Map<string, AdjustmentGroup>;
  revenue: Map<string, AppRevenueExpected>;
  counts: RecomputeCounts;
}

/** Every count at 0, in the report's order. */
export function zeroCounts(): RecomputeCounts {
  return {
    messages: 0,
    records: 0,
    skipped_undecodable: 0,
    skipped_key_mismatch: 0,
    skipped_wrong_partition: 0,
    skipped_unauthorized: 0,
    duplicates_ignored: 0,
    rejected: 0,
    usage_outcomes: 0,
    hold_decisions: 0,
  };
}

export function usageGroupKey(enterpriseId: string, level: string): string {
  return `${enterpriseId}\u0000${level}`;
}

type RowMoney = "records" | "cost_micros" | "billed_micros" | "creator_share_micros" | "platform_fee_micros";

/** One row's count and money into its group (usage and adjustments alike), and its id and account. */
function addRow(
  group: AppLevelGroup<RowMoney>,
  index: Map<string, number>,
  row: Record<Exclude<RowMoney, "records">, bigint> & { record_id: string; account_key: string },
): void {
  const figures = group.figures;
  figures.records += 1n;
  figures.cost_micros += row.cost_micros;
  figures.billed_micros += row.billed_micros;
  figures.creator_share_micros += row.creator_share_micros;
  figures.platform_fee_micros += row.platform_fee_micros;
  pushAccountId(group, index, row.account_key, row.record_id);
}

/** The group of `groups` for an app and level, created with every figure 0 on first use. */
function groupOf<F extends string>(
  groups: Map<string, AppLevelGroup<F>>,
  fields: readonly F[],
  enterpriseId: string,
  level: Level,
): AppLevelGroup<F> {
  const key = usageGroupKey(enterpriseId, level);
  let group = groups.get(key);
  if (group === undefined) {
    group = { enterprise_id: enterpriseId, level, figures: zeroFigures(fields), ...emptyAccountIds() };
    groups.set(key, group);
  }
  return group;
}

// Records per apply call. The apply is in place (no copy of the accounts per call), so the size only
// bounds the records held at once, decoded and waiting: the fewer, the fewer survive young-generation
// collections. In bench:audit 100,000 cost about 5% more CPU than 12,000, and 12,000 about 3% more than
// 600 (eight alternated pairs, 2026-12-05). A recomputer that holds one partition of P gets a chunk of 1/P
// of this (pipeline/audit/units.ts sizes them so).
export const RECOMPUTE_CHUNK = 600;

/**
 * Decodes messages exactly as the processor's PartitionWorker does (decodeRecord, then the key must be
 * accountKeyOf(record), then, given `partitionCounts`, the partition must be the key's; anything else is
 * dead-lettered there and skipped here) and applies them with the billing core, each with its log
 * timestamp so the event-time bound decides as it did in the processor. Accounts are independent and
 * each partition arrives in offset order, so whatever the batch cuts, this is the state the processor
 * reaches. The audit gives each partition a Recomputer of its own (pipeline/audit/units.ts), as the
 * processor keeps one state per partition: a tick then reaches the accounts of its partition only. When
 * accounts may span partitions (a partition count that changed), one Recomputer takes all of them, in
 * the log order of log-order.ts (an account's records on two partitions need one order, and the result
 * depends on it), with ticksPerPartition.
 */
export class Recomputer {
  private state: BillingState = emptyState();
  private pending: SequencedRecord<undefined, TopicRecord>[] = [];
  private readonly trails = new Map<string, AccountTrail>();
  private readonly usage = new Map<string, UsageGroup>();
  private readonly adjustments = new Map<string, AdjustmentGroup>();
  private readonly revenue = new Map<string, AppRevenueExpected>();
  private readonly holds = new Map<string, ComparedDecision>();
  /** The accounts of each group's and ledger's ids, by key (pushAccountId); never handed out. */
  private readonly accountIndex = new Map<AccountIds, Map<string, number>>();
  readonly counts: RecomputeCounts = zeroCounts();

  private readonly partitionCounts: readonly number[] | undefined;
  private readonly creditPolicy: CreditAuthorization;
  private readonly chunk: number;
  /** With ticksPerPartition: the accounts with a record on each partition, in the order first seen. */
  private readonly accountsOf: Map<number, Set<string>> | undefined;

  constructor(
    private readonly billing: BillingConfig,
    private readonly maxRecordBytes: number,
    options: RecomputerOptions = {},
  ) {
    this.partitionCounts = options.partitionCounts;
    this.creditPolicy = options.creditPolicy ?? creditAuthorization({});
    this.chunk = Math.max(1, options.chunk ?? RECOMPUTE_CHUNK);
    this.accountsOf = options.ticksPerPartition === true ? new Map() : undefined;
  }

  add(partition: number, message: TopicMessage): void {
    this.counts.messages++;
    const admitted = admitMessage(message, partition, {
      maxRecordBytes: this.maxRecordBytes,
      partitionCounts: this.partitionCounts,
      creditPolicy: this.creditPolicy,
    });
    if (!admitted.ok) {
      this.counts[SKIP_COUNT[admitted.code] ?? "skipped_undecodable"]++;
      return;
    }
    const { record, key, logTimeMs } = admitted;
    this.counts.records++;
    // A tick belongs to no account: it has no trail, only its place in the order.
    if (record.type === "tick") {
      if (this.accountsOf !== undefined) {
        this.applyTick(partition, { record, seq: undefined, logTimeMs });
        return;
      }
      this.pending.push({ record, seq: undefined, logTimeMs });
      if (this.pending.length >= this.chunk) this.apply();
      return;
    }
    if (this.accountsOf !== undefined) {
      let accounts = this.accountsOf.get(partition);
      if (accounts === undefined) {
        accounts = new Set();
        this.accountsOf.set(partition, accounts);
      }
      accounts.add(key);
    }
    let trail = this.trails.get(key);
    if (trail === undefined) {
      trail = { partition, ids: [], offsets: [] };
      this.trails.set(key, trail);
    }
    if (trail.partitions === undefined && partition !== trail.partition)
      trail.partitions = trail.ids.map(() => trail.partition);
    trail.partitions?.push(partition);
    trail.ids.push(record.record_id);
    trail.offsets.push(Number(message.offset));
    this.pending.push({ record, seq: undefined, logTimeMs });
    if (this.pending.length >= this.chunk) this.apply();
  }

  finish(): Expected {
    this.apply();
    return {
      state: this.state,
      holds: this.holds,
      trails: this.trails,
      usage: this.usage,
      adjustments: this.adjustments,
      revenue: this.revenue,
      counts: this.counts,
    };
  }

  /**
   * A tick of `partition` (ticksPerPartition): the records before it are applied, then the tick to the
   * accounts with a record on that partition only, as the processor's partition applies it to its own.
   * The core takes due accounts in key order, so the view's order does not matter.
   */
  private applyTick(partition: number, tick: SequencedRecord<undefined, TopicRecord>): void {
    this.apply();
    const view = emptyMap<AccountState>();
    for (const key of this.accountsOf?.get(partition) ?? []) {
      const account = ownValue(this.state.accounts, key);
      if (account !== undefined) view[key] = account;
    }
    const outputs = applyBatchInPlace({ accounts: view }, [tick], this.billing);
    for (const key of Object.keys(view)) this.state.accounts[key] = view[key]!;
    this.take(outputs);
  }

  private apply(): void {
    if (this.pending.length === 0) return;
    // The recomputer keeps one state and never gives out its accounts before finish: no copies needed.
    const outputs = applyBatchInPlace(this.state, this.pending, this.billing);
    this.pending = [];
    this.take(outputs);
  }

  /** Counts and groups the outputs of applied records. */
  private take(outputs: readonly SequencedTopicOutput<undefined>[]): void {
    for (const output of outputs) {
      if (output.kind === "duplicate_ignored") this.counts.duplicates_ignored++;
      else if (output.kind === "rejected" || output.kind === "tick_rejected") this.counts.rejected++;
      else if (output.kind === "hold_decision") {
        this.counts.hold_decisions++;
        this.holds.set(decisionKey(output), comparedDecision(output));
      }
      if (output.kind === "adjustment") {
        const group = groupOf(this.adjustments, ADJUSTMENT_FIELDS, output.enterprise_id, output.level);
        addRow(group, this.indexOf(group), output);
        group.figures.trial_tokens += BigInt(output.trial_tokens);
        group.figures.paid_tokens += BigInt(output.paid_tokens);
        group.figures.grant_tokens += BigInt(output.grant_tokens ?? 0);
        this.addRevenue(output);
      }
      if (output.kind !== "usage_outcome") continue;
      this.counts.usage_outcomes++;
      const group = groupOf(this.usage, USAGE_FIELDS, output.enterprise_id, output.level);
      addRow(group, this.indexOf(group), output);
      group.figures.tokens += BigInt(output.tokens_used);
      group.figures.trial_tokens += BigInt(output.trial_tokens_used);
      group.figures.paid_tokens += BigInt(output.paid_tokens_used);
      this.addRevenue(output);
    }
  }

  /** As the processor keeps its ledgers (PartitionWorker.addRevenue): billed app usage and its corrections. */
  private addRevenue(entry: LedgerEntry): void {
    if (!earnsRevenue(entry)) return;
    let ledger = this.revenue.get(entry.enterprise_id);
    if (ledger === undefined) {
      ledger = {
        enterprise_id: entry.enterprise_id,
        figures: zeroFigures(REVENUE_FIELDS),
        ...emptyAccountIds(),
      };
      this.revenue.set(entry.enterprise_id, ledger);
    }
    const delta = ledgerDelta(entry);
    for (const field of REVENUE_FIELDS) ledger.figures[field] += delta[field];
    pushAccountId(ledger, this.indexOf(ledger), entry.account_key, entry.record_id);
  }

  private indexOf(list: AccountIds): Map<string, number> {
    let index = this.accountIndex.get(list);
    if (index === undefined) {
      index = new Map();
      this.accountIndex.set(list, index);
    }
    return index;
  }
}
