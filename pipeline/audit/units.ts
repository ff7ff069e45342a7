import type { CreditAuthorization } from "../auth/signature.ts";
import type { AccountState, BillingConfig } from "../core/index.ts";
import { emptyMap } from "../core/own.ts";
import { comparedAccount } from "./diff.ts";
import { ADJUSTMENT_FIELDS, type Figures, REVENUE_FIELDS, USAGE_FIELDS } from "./figures.ts";
import type { ComparedDecision } from "./hold-decisions.ts";
import {
  type AccountIds,
  type AccountTrail,
  type AdjustmentGroup,
  type AppRevenueExpected,
  accountIndexOf,
  type Expected,
  RECOMPUTE_CHUNK,
  type RecomputeCounts,
  Recomputer,
  type TopicMessage,
  type UsageGroup,
  zeroCounts,
} from "./recompute.ts";

/**
 * What every recompute unit needs. The same object (structured-cloned) in the main thread and in every
 * worker thread, so the units do not depend on where they run.
 */
export interface RecomputeSetup {
  billing: BillingConfig;
  maxRecordBytes: number;
  /** The input topic's partition counts the processor registered; see RecomputerOptions. */
  partitionCounts: readonly number[] | undefined;
  creditPolicy: CreditAuthorization;
  /** The partitions of the range that hold records. They decide the units and the chunk size. */
  partitions: readonly number[];
}

/** The one unit of a recompute whose accounts may span partitions. */
export const ALL_PARTITIONS = -1;

/** Never fewer records per apply call than this, however many partitions share RECOMPUTE_CHUNK. */
const MIN_CHUNK = 100;

/**
 * A unit per partition when the topic has had one partition count: every admitted record then sits on
 * its key's partition, so no account spans partitions, and a tick reaches only the accounts of its own
 * partition, as in the processor (one state per partition). When the count changed (or is unknown), an
 * account may have records on two partitions, and there is one unit for all of them, which no worker
 * count can split. That unit must be fed in one order whatever the delivery (feed.ts merges the
 * partitions by log time: log-order.ts), and its ticks reach the accounts of their own partition only
 * (ticksPerPartition), as in the one-count case.
 */
export function unitsOf(setup: Pick<RecomputeSetup, "partitionCounts" | "partitions">): number[] {
  if (setup.partitionCounts?.length !== 1) return [ALL_PARTITIONS];
  return [...new Set(setup.partitions)].sort((a, b) => a - b);
}

export function unitOf(setup: Pick<RecomputeSetup, "partitionCounts">, partition: number): number {
  return setup.partitionCounts?.length === 1 ? partition : ALL_PARTITIONS;
}

/**
 * One unit's figures: the recomputer's Expected, each account as comparedAccount reduces it, with the
 * unit it belongs to. Structured-cloneable.
 */
export interface UnitResult {
  unit: number;
  expected: Expected;
}

/**
 * The recompute units one thread holds (all of them when the audit runs in the main thread, or the
 * ones a worker was given). Each unit is a Recomputer fed its partitions' records in offset order; the
 * unit of all partitions (ALL_PARTITIONS) is applied in the order its messages are added, which the
 * caller makes one order (feed.ts). Pure: no I/O, no clock.
 */
export class UnitRecompute {
  private readonly units = new Map<number, Recomputer>();
  private readonly chunk: number;

  constructor(private readonly setup: RecomputeSetup) {
    // Chunks of 1/P of RECOMPUTE_CHUNK for P units: all units together hold as many pending records as
    // one recomputer would.
    const units = unitsOf(setup).length;
    this.chunk = Math.max(MIN_CHUNK, Math.ceil(RECOMPUTE_CHUNK / units));
  }

  add(partition: number, message: TopicMessage): void {
    const unit = unitOf(this.setup, partition);
    let recomputer = this.units.get(unit);
    if (recomputer === undefined) {
      recomputer = new Recomputer(this.setup.billing, this.setup.maxRecordBytes, {
        partitionCounts: this.setup.partitionCounts,
        creditPolicy: this.setup.creditPolicy,
        chunk: this.chunk,
        ticksPerPartition: unit === ALL_PARTITIONS,
      });
      this.units.set(unit, recomputer);
    }
    recomputer.add(partition, message);
  }

  /**
   * Every unit that received a message, by unit; each account as the diff compares it
   * (comparedAccount), small enough to cross between threads.
   */
  finish(): UnitResult[] {
    return [...this.units.entries()]
      .sort(([a], [b]) => a - b)
      .map(([unit, recomputer]) => {
        const expected = recomputer.finish();
        const accounts = emptyMap<AccountState>();
        for (const key of Object.keys(expected.state.accounts))
          accounts[key] = comparedAccount(expected.state.accounts[key]!);
        return { unit, expected: { ...expected, state: { accounts } } };
      });
  }
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function sortedMap<V>(entries: Iterable<[string, V]>): Map<string, V> {
  return new Map([...entries].sort(([a], [b]) => compareText(a, b)));
}

/**
 * Adds one unit's groups into the merged ones: figures summed, record ids appended with their accounts.
 * `indexes` holds each merged group's accounts by key, to find an account's index in it.
 */
function mergeGroups<F extends string, G extends AccountIds & { figures: Figures<F> }>(
  merged: Map<string, G>,
  groups: Map<string, G>,
  fields: readonly F[],
  indexes: Map<AccountIds, Map<string, number>>,
): void {
  for (const [key, group] of groups) {
    const into = merged.get(key);
    if (into === undefined) {
      const copy = {
        ...group,
        figures: { ...group.figures },
        ids: [...group.ids],
        accountOf: [...group.accountOf],
        accounts: [...group.accounts],
      };
      merged.set(key, copy);
      indexes.set(copy, accountIndexOf(copy));
      continue;
    }
    for (const field of fields) into.figures[field] += group.figures[field];
    // The unit's accounts, each once, to the merged group's: then every id is two array pushes.
    const index = indexes.get(into)!;
    const remap = group.accounts.map((account) => {
      let at = index.get(account);
      if (at === undefined) {
        at = into.accounts.length;
        into.accounts.push(account);
        index.set(account, at);
      }
      return at;
    });
    for (let i = 0; i < group.ids.length; i++) {
      into.ids.push(group.ids[i]!);
      into.accountOf.push(remap[group.accountOf[i]!]!);
    }
  }
}

/**
 * The figures of every unit as one Expected, the same whatever thread computed which unit: units are
 * taken in order (partition order), maps are built in key order, and the record ids of an app's usage,
 * adjustments and revenue (each with its account) are its ids unit after unit, so in (partition,
 * offset) order (in the one unit of a topic whose partition count changed: in the log order it was
 * applied in). Counts are summed.
 */
export function mergeUnits(results: readonly UnitResult[]): Expected {
  const ordered = [...results].sort((a, b) => a.unit - b.unit);
  const accounts: [string, AccountState][] = [];
  const trails: [string, AccountTrail][] = [];
  const usage = new Map<string, UsageGroup>();
  const adjustments = new Map<string, AdjustmentGroup>();
  const revenue = new Map<string, AppRevenueExpected>();
  const holds: [string, ComparedDecision][] = [];
  const indexes = new Map<AccountIds, Map<string, number>>();
  const counts = zeroCounts();
  for (const { expected } of ordered) {
    for (const key of Object.keys(expected.state.accounts))
      accounts.push([key, expected.state.accounts[key]!]);
    for (const entry of expected.trails) trails.push(entry);
    for (const entry of expected.holds) holds.push(entry);
    mergeGroups(usage, expected.usage, USAGE_FIELDS, indexes);
    mergeGroups(adjustments, expected.adjustments, ADJUSTMENT_FIELDS, indexes);
    mergeGroups(revenue, expected.revenue, REVENUE_FIELDS, indexes);
    for (const name of Object.keys(counts) as (keyof RecomputeCounts)[])
      counts[name] += expected.counts[name];
  }
  accounts.sort(([a], [b]) => compareText(a, b));
  const state = emptyMap<AccountState>();
  for (let i = 0; i < accounts.length; i++) {
    const [key, account] = accounts[i]!;
    if (i > 0 && accounts[i - 1]![0] === key)
      throw new Error(`audit: account ${key} was recomputed in two units (a partition count changed?)`);
    state[key] = account;
  }
  return {
    state: { accounts: state },
    holds: sortedMap(holds),
    trails: sortedMap(trails),
    usage: sortedMap(usage),
    adjustments: sortedMap(adjustments),
    revenue: sortedMap(revenue),
    counts,
  };
}
