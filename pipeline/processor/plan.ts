/**
 * What one batch (or one write-behind cycle) must write, and the checks a plan passes before anything is
 * written. No I/O here: partition-worker.ts fills a plan from the core's outputs, flush.ts writes it.
 */
import { BSON } from "mongodb";
import type {
  BudgetEvent,
  BudgetState,
  DeadLetter,
  HoldDecision,
  SessionSummary,
} from "../../schemas/index.ts";
import { bigintReplacer, INT64_MAX } from "../../schemas/index.ts";
import { bsonSizeBound } from "../core/bson-size-bound.ts";
import type { AccountState } from "../core/index.ts";
import type { RevenueLedger } from "../core/revenue-ledger.ts";
import { AgentmeterError } from "../errors.ts";
import type { HoldRegistry } from "./hold-registry.ts";
import type { PendingWrite, PositionedAdjustment, PositionedOutcome, ProjectionWrite } from "./ports.ts";

/**
 * Past this size an account document cannot be written (MongoDB's limit is 16 MiB): the record that
 * would take it there is refused instead of stopping the partition on every retry.
 */
export const MAX_ACCOUNT_DOC_BYTES = 15 * 1024 * 1024;

export interface PlanStats {
  consumed: number;
  applied: number;
  replayedSkipped: number;
  deadLettered: number;
  duplicates: number;
  /** Ids inside the dedupe horizon forgotten for the cap in this batch (see pipeline/core/dedupe.ts). */
  dedupeForgotten: number;
}

/** Everything one batch must write, in the order the flush writes it. */
export interface FlushPlan {
  /** The source as the stores know it (the topic, or `topic~N` after a re-creation) and the partition. */
  topic: string;
  partition: number;
  deadLetters: DeadLetter[];
  budgetEvents: BudgetEvent[];
  budgetStates: BudgetState[];
  /** Answers to hold records, published with the other decisions (on the holds topic, keyed by hold_id). */
  holdDecisions: HoldDecision[];
  sessionSummaries: SessionSummary[];
  usage: PositionedOutcome[];
  /** Voids and refunds applied, for ClickHouse's adjustments table. */
  adjustments: PositionedAdjustment[];
  ledgerWrites: PendingWrite<RevenueLedger>[];
  /** The partition's hold registry, when the batch changed which accounts hold tokens (hold-registry.ts). */
  registryWrites: PendingWrite<HoldRegistry>[];
  projections: ProjectionWrite[];
  accountWrites: PendingWrite<AccountState>[];
  /** The first offset the plan covers, and the offset to commit once everything is durable (last + 1). */
  firstOffset: string;
  commitOffset: string;
  /** When the plan was made: the flush's progress row carries it (the same on every retry). */
  plannedAt: string;
  stats: PlanStats;
  /** Milliseconds of each part of planning: `load` waits on MongoDB, the rest is this thread's CPU. */
  timings: { decode: number; load: number; apply: number; project: number };
}

export function emptyPlan(
  source: string,
  partition: number,
  offsets: { first: string | undefined; last: string | undefined },
  plannedAt: string,
): FlushPlan {
  return {
    topic: source,
    partition,
    deadLetters: [],
    budgetEvents: [],
    budgetStates: [],
    holdDecisions: [],
    sessionSummaries: [],
    usage: [],
    adjustments: [],
    ledgerWrites: [],
    registryWrites: [],
    projections: [],
    accountWrites: [],
    firstOffset: offsets.first ?? "0",
    commitOffset: offsets.last === undefined ? "0" : (BigInt(offsets.last) + 1n).toString(),
    plannedAt,
    stats: {
      consumed: 0,
      applied: 0,
      replayedSkipped: 0,
      deadLettered: 0,
      duplicates: 0,
      dedupeForgotten: 0,
    },
    timings: { decode: 0, load: 0, apply: 0, project: 0 },
  };
}

function checkDocumentSize(what: string, write: PendingWrite<object>): void {
  // The exact size walks every string; the cheap bound settles nearly every document.
  const bound = bsonSizeBound(write.body);
  if (bound !== undefined && bound <= MAX_ACCOUNT_DOC_BYTES) return;
  const bytes = BSON.calculateObjectSize(write.body as BSON.Document, { ignoreUndefined: true });
  if (bytes > MAX_ACCOUNT_DOC_BYTES)
    throw new AgentmeterError(
      "RECORD_STORE_REJECTED",
      `${what} ${write.ref.id} would be ${bytes} bytes, over the ${MAX_ACCOUNT_DOC_BYTES}-byte limit`,
    );
}

const LEDGER_MONEY = [
  "billed_micros",
  "creator_share_micros",
  "platform_fee_micros",
  "reversed_billed_micros",
  "reversed_creator_share_micros",
  "reversed_platform_fee_micros",
] as const satisfies readonly (keyof RevenueLedger)[];

/**
 * An app's ledger sums the usage of every end user of the app on the partition, which the core's bounds
 * (one account's counters within int64, limits.ts) do not bound. MongoDB stores a bigint as an int64 and
 * the driver keeps only its low 64 bits, so a sum past it would be stored wrapped, silently: a huge
 * figure as a negative one.
 */
function checkLedgerRange(write: PendingWrite<RevenueLedger>): void {
  for (const field of LEDGER_MONEY) {
    const value = write.body[field];
    if (value !== undefined && (value > INT64_MAX || value < -INT64_MAX - 1n))
      throw new AgentmeterError(
        "RECORD_STORE_REJECTED",
        `revenue ledger ${write.ref.id} would hold ${field} ${value}, past the signed 64-bit integer MongoDB stores`,
      );
  }
}

/**
 * A document or message past what its store takes is refused now, before anything is written, so the
 * processor can find the record that grew it and dead-letter it (see Processor: a deterministic refusal).
 */
export function checkSizes(plan: FlushPlan, maxStateMessageBytes: number): void {
  for (const write of plan.accountWrites) checkDocumentSize("account document", write);
  for (const write of plan.ledgerWrites) checkLedgerRange(write);
  // A bucket of the hold registry lists about 1/64 of the partition's accounts a tick will change: past
  // the limit (millions of accounts a partition) the record that would add one is refused like this.
  for (const write of plan.registryWrites) checkDocumentSize("hold registry document", write);
  for (const state of plan.budgetStates) {
    const bytes = Buffer.byteLength(JSON.stringify(state, bigintReplacer));
    if (bytes > maxStateMessageBytes)
      throw new AgentmeterError(
        "RECORD_STORE_REJECTED",
        `budget state of ${state.account_key} would be ${bytes} bytes, over the ${maxStateMessageBytes}-byte message limit`,
      );
  }
}
