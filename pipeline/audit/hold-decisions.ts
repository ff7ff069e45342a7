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
  /** Decisions the billing core says were made, and so compared (found, or missing from a complete topic). */
  checked: number;
  /** Decisions the core made that are not on a topic retention has cut: neither confirmed nor refuted. */
  unverifiable: number;
  /** Decisions on the topic for records outside the audited range (produced after the audit began). */
  outside_range: number;
}

function show(value: unknown): string | null {
  return value === null || value === undefined ? null : String(value);
}

/**
 * Every decision the core made must be on the reply topic, and every copy of it there (a processor that
 * crashed after publishing publishes again) must say what the core says. Sorted by account and record so two
 * audits of the same topics give the same report.
 */
export function diffHoldDecisions(
  expected: ReadonlyMap<string, ComparedDecision>,
  published: PublishedDecisions,
): HoldDecisionCheck {
  const differences: Difference[] = [];
  let checked = 0;
  let unverifiable = 0;
  for (const key of [...expected.keys()].sort()) {
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
  let outsideRange = 0;
  for (const key of published.byRecord.keys()) if (!expected.has(key)) outsideRange++;
  return { differences, checked, unverifiable, outside_range: outsideRange };
}
