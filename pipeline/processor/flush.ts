/**
 * Makes one batch's effects durable, through the ports (ports.ts). The order is the exactly-once
 * argument, so it is fixed:
 *  1. Outputs, side by side:
 *     - the event bus (dead letters, budget events, latest budget state): at least once; events carry a
 *       deterministic id and the state topic is compacted, so a repeat is harmless;
 *     - the usage log and its adjustments: once per offset (partition watermark + deduplication token); session summaries
 *       (a replay re-inserts them identically and the store collapses them); the flush's progress row
 *       (offsets covered, applied, skipped, dead-lettered: sinks/clickhouse/partition-progress.ts).
 *  2. Read side, side by side:
 *     - revenue ledgers: compare-and-set on their own watermark, written BEFORE the accounts, so that
 *       any record an account document does not yet hold is re-applied and re-counted only where missing;
 *     - projections (pause states, sessions, chat summaries, apps, workflows): absolute values, upserted.
 *  3. Account documents: compare-and-set on their watermark. After this the batch is applied.
 *  4. (the caller) commit offsets: a crash before it only causes re-delivery, which 1-3 skip.
 * Every step may be retried as a whole: each is idempotent for the same plan. Steps that do not depend
 * on each other overlap, because a flush's latency is the sum of its round trips.
 */
import type { FlushPlan } from "./plan.ts";
import type { FlushTargets } from "./ports.ts";

/** Milliseconds spent in each part of one flush (parts of one step overlap): where the time goes. */
export interface FlushTimings {
  kafka: number;
  clickhouse: number;
  ledgers: number;
  projections: number;
  accounts: number;
}

/**
 * Runs side by side and waits for every one to settle before throwing the first failure, so that a
 * retried flush never overlaps a straggler of the failed try.
 */
async function settled(promises: readonly Promise<unknown>[]): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
}

/** Step 1's event-bus half: the decisions agents act on. */
export function publishOutputs(plan: FlushPlan, targets: FlushTargets): Promise<void> {
  return targets.bus.publish(plan);
}

/** Step 1's log half: usage rows, session summaries and the progress row. */
function writeLogs(plan: FlushPlan, targets: FlushTargets): Promise<void> {
  return settled([
    targets.usageLog.append(plan.topic, plan.partition, plan.usage),
    targets.usageLog.appendAdjustments(plan.topic, plan.partition, plan.adjustments),
    targets.summaries.append(plan.topic, plan.partition, plan.sessionSummaries),
    targets.usageLog.appendProgress({
      source: plan.topic,
      partition: plan.partition,
      firstOffset: plan.firstOffset,
      lastOffset: (BigInt(plan.commitOffset) - 1n).toString(),
      consumed: plan.stats.consumed,
      applied: plan.stats.applied,
      replayedSkipped: plan.stats.replayedSkipped,
      deadLettered: plan.stats.deadLettered,
      duplicates: plan.stats.duplicates,
      flushedAt: plan.plannedAt,
    }),
  ]);
}

/** Steps 2 and 3: ledgers and projections, then the accounts. */
async function writeDocuments(
  plan: FlushPlan,
  targets: FlushTargets,
  checkpoint: () => void,
  timed: Timed,
): Promise<void> {
  const at = { topic: plan.topic, partition: plan.partition };
  await settled([
    timed("ledgers", () =>
      settled([
        targets.ledgers.write(plan.ledgerWrites, at),
        targets.registry.write(plan.registryWrites, at),
      ]),
    ),
    timed("projections", () => targets.projections.write(plan.projections)),
  ]);
  checkpoint();
  await timed("accounts", () => targets.accounts.write(plan.accountWrites, at));
}

type Timed = (part: keyof FlushTimings, action: () => Promise<unknown>) => Promise<void>;

function timer(timings: FlushTimings): Timed {
  return async (part, action) => {
    const started = performance.now();
    await action();
    timings[part] = Math.round(performance.now() - started);
  };
}

function zeroTimings(): FlushTimings {
  return { kafka: 0, clickhouse: 0, ledgers: 0, projections: 0, accounts: 0 };
}

/**
 * Steps 1 (logs) to 3 of a plan whose decisions are already published: the write-behind cycle
 * (write-behind.ts). Publishing first keeps the order's promise: nothing reaches an account document
 * before its outputs are on the bus.
 */
export async function writeStores(
  plan: FlushPlan,
  targets: FlushTargets,
  checkpoint: () => void,
): Promise<FlushTimings> {
  const timings = zeroTimings();
  const timed = timer(timings);
  await timed("clickhouse", () => writeLogs(plan, targets));
  checkpoint();
  await writeDocuments(plan, targets, checkpoint, timed);
  return timings;
}

/** The whole plan in the order above (write mode `sync`, and the fallback after a store refusal). */
export async function flush(
  plan: FlushPlan,
  targets: FlushTargets,
  /** Throws once the batch's partition may belong to another member; called between steps. */
  checkpoint: () => void,
): Promise<FlushTimings> {
  const timings = zeroTimings();
  const timed = timer(timings);
  await settled([
    timed("kafka", () => publishOutputs(plan, targets)),
    timed("clickhouse", () => writeLogs(plan, targets)),
  ]);
  checkpoint();
  await writeDocuments(plan, targets, checkpoint, timed);
  return timings;
}
