import { type HoldDecision, holdDecisionSchema } from "../../schemas/outputs.ts";
import type { Difference } from "./diff.ts";

/**
 * The figures of a hold decision the audit compares: what the runtime waiting on the reply acted on.
 * `detail` is the denial in words, derived from these; `occurred_at` and the account's names come from
 * the hold record itself.
 */
export const HOLD_DECISION_FIELDS = [
  "hold_id",
  "account_key",
  "granted",
  "repeated",
  "reason",
  "tokens",
  "expires_at",
  "available_tokens",
  "held_tokens",
] as const satisfies readonly (keyof HoldDecision)[];

export type HoldDecisionField = (typeof HOLD_DECISION_FIELDS)[number];
export type ComparedDecision = Pick<HoldDecision, HoldDecisionField | "record_id">;

export function comparedDecision(decision: HoldDecision): ComparedDecision {
  const view: Partial<Record<HoldDecisionField | "record_id", unknown>> = { record_id: decision.record_id };
  for (const field of HOLD_DECISION_FIELDS) view[field] = decision[field];
  return view as ComparedDecision;
}

/**
 * Decisions are matched by the hold record that caused them: its account and record_id (record ids are
 * unique per account, as deduplication is).
 */
export function decisionKey(decision: Pick<HoldDecision, "account_key" | "record_id">): string {
  return `${decision.account_key}\u0000${decision.record_id}`;
}

/** The decisions on the reply topic, by decisionKey of the hold record that caused each. */
export interface PublishedDecisions {
  byRecord: Map<string, ComparedDecision[]>;
  /** Messages on the reply topic that are not a hold decision of this schema. */
  undecodable: number;
  /**
   * False when retention has removed messages from the reply topic (a partition does not start at
   * offset 0): a decision not found may then have been published and deleted, so only the decisions
   * found are compared.
   */
  complete: boolean;
}

export function emptyPublished(complete: boolean): PublishedDecisions {
  return { byRecord: new Map(), undecodable: 0, complete };
}

/** Adds one message of the reply topic. */
export function addPublished(published: PublishedDecisions, value: Buffer | null): void {
  let parsed: unknown;
  try {
    parsed = value === null ? undefined : JSON.parse(value.toString("utf8"));
  } catch {
    parsed = undefined;
  }
  const decision = holdDecisionSchema.safeParse(parsed);
  if (!decision.success) {
    published.undecodable++;
    return;
  }
  const key = decisionKey(decision.data);
  const list = published.byRecord.get(key) ?? [];
  list.push(comparedDecision(decision.data));
  published.byRecord.set(key, list);
}

export interface HoldDecisionCheck {
  differences: Difference[];
  /**
   * Decisions compared: those the billing core says were made (found, or missing from a complete
   * topic), and those on the topic for a record of the range that the core made no decision for.
   */
  checked: number;
  /** Decisions the core made that are not on a topic retention has cut: neither confirmed nor refuted. */
  unverifiable: number;
  /**
   * Decisions on the topic for records the audit did not read: after the audited range (produced after
   * the audit began). A decision for a record the audit read is never counted here: if the core made
   * none for it, it is a difference.
   */
  outside_range: number;
}

/** Whether the audit read a record of this account and record_id (admitted, in the audited range). */
export type RecordsRead = (accountKey: string, recordId: string) => boolean;

/**
 * The records the recompute read, from its trails (every admitted record of every account, by account):
 * an account's ids become a set the first time a decision of that account is looked up.
 */
export function recordsReadOf(trails: ReadonlyMap<string, { ids: readonly string[] }>): RecordsRead {
  const sets = new Map<string, Set<string>>();
  return (accountKey, recordId) => {
    const trail = trails.get(accountKey);
    if (trail === undefined) return false;
    let ids = sets.get(accountKey);
    if (ids === undefined) {
      ids = new Set(trail.ids);
      sets.set(accountKey, ids);
    }
    return ids.has(recordId);
  };
}

function show(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Every decision the core made must be on the reply topic, and every copy of it there (a processor that
 * crashed after publishing publishes again) must say what the core says. A decision on the topic for a
 * record the audit read (`read`: the range's records) that the core made no decision for is a
 * difference too (field `decision`, expected null, actual `published`): the runtime acted on a decision
 * the records do not give. Decisions for records the audit did not read are counted `outside_range`
 * (without `read`, every decision the core did not make is). Sorted by account and record so two
 * audits of the same topics give the same report.
 */
export function diffHoldDecisions(
  expected: ReadonlyMap<string, ComparedDecision>,
  published: PublishedDecisions,
  read?: RecordsRead,
): HoldDecisionCheck {
  const differences: Difference[] = [];
  let checked = 0;
  let unverifiable = 0;
  let outsideRange = 0;
  // Decisions on the topic the core did not make: for a record of the range, or for one after it.
  const phantoms = new Map<string, ComparedDecision[]>();
  for (const [key, copies] of published.byRecord) {
    if (expected.has(key)) continue;
    const { account_key: account, record_id: recordId } = copies[0]!;
    if (read?.(account, recordId) === true) phantoms.set(key, copies);
    else outsideRange++;
  }
  for (const key of [...expected.keys(), ...phantoms.keys()].sort()) {
    const phantom = phantoms.get(key);
    if (phantom !== undefined) {
      checked++;
      // Copies may name other hold ids: the least, so that the report does not depend on their order.
      const holdId = phantom.map((copy) => copy.hold_id).sort(compareText)[0]!;
      differences.push({
        store: "kafka.hold_decisions",
        subject: holdId,
        enterprise_id: null,
        account_key: phantom[0]!.account_key,
        level: null,
        delta: null,
        record_ids: [phantom[0]!.record_id],
        record_ids_total: 1,
        field: "decision",
        expected: null,
        actual: "published",
        explained_by: `a record of the audited range the billing core made no hold decision for; ${phantom.length} decision(s) for it on the reply topic`,
      });
      continue;
    }
    const want = expected.get(key)!;
    const copies = published.byRecord.get(key);
    const base = {
      store: "kafka.hold_decisions" as const,
      subject: want.hold_id,
      enterprise_id: null,
      account_key: want.account_key,
      level: null,
      delta: null,
      record_ids: [want.record_id],
      record_ids_total: 1,
    };
    if (copies === undefined) {
      if (!published.complete) {
        unverifiable++;
        continue;
      }
      checked++;
      differences.push({
        ...base,
        field: "decision",
        expected: "published",
        actual: null,
        explained_by: "the hold record whose decision is not on the reply topic",
      });
      continue;
    }
    checked++;
    const seen = new Set<string>();
    for (const copy of copies) {
      for (const field of HOLD_DECISION_FIELDS) {
        const expectedValue = show(want[field]);
        const actualValue = show(copy[field]);
        if (expectedValue === actualValue || seen.has(`${field}\u0000${actualValue}`)) continue;
        seen.add(`${field}\u0000${actualValue}`);
        differences.push({
          ...base,
          field,
          expected: expectedValue,
          actual: actualValue,
          explained_by: `the hold record; ${copies.length} decision(s) for it on the reply topic`,
        });
      }
    }
  }
  return { differences, checked, unverifiable, outside_range: outsideRange };
}
