import { createHash } from "node:crypto";
import { bigintReplacer } from "../../schemas/index.ts";
import type { BillingConfig } from "../core/index.ts";
import { renderTable } from "../text-table.ts";
import { type Difference, STORES, type Store } from "./diff.ts";
import { sourceOf, type TopicRange } from "./range.ts";
import type { RecomputeCounts } from "./recompute.ts";

export interface AuditNamespace {
  mongodb_platform_db: string;
  mongodb_app_db_prefix: string;
  clickhouse_database: string;
}

/**
 * The audit's machine-readable result. Deterministic by construction: no clock, no duration, no host;
 * everything sorted; money and tokens as decimal strings. Two audits of the same topic and stores give
 * byte-identical files.
 */
export interface AuditReport {
  report_version: 1;
  /**
   * complete: the whole topic, absolute figures compared; delta: a range, or any read of a re-created
   * topic (incarnation above 0), see docs/audit.md.
   */
  mode: "complete" | "delta";
  topic: string;
  /** The topic's incarnation audited: 0 until it is deleted and created again (AgentmeterTopics). */
  incarnation: number;
  /** The name its rows and watermarks are stored under: the topic, or `topic~N` from incarnation 1. */
  source: string;
  partitions: TopicRange["partitions"];
  namespace: AuditNamespace;
  /** SHA-256 of the billing config used to recompute (price book included). */
  billing_config_sha256: string;
  counts: RecomputeCounts;
  summary: { store: Store; checked: number; differences: number }[];
  /** Complete audits: what of the hold-decision reply topic could not be compared (see hold-decisions.ts). */
  holds?: HoldsReport;
  differences: Difference[];
}

export interface HoldsReport {
  topic: string;
  /** Decisions the core made that retention removed from the reply topic, or may have. */
  unverifiable: number;
  /** Decisions on the reply topic for records after the audited range. */
  outside_range: number;
  /** Messages on the reply topic that are not a hold decision. */
  undecodable: number;
}

function billingConfigHash(billing: BillingConfig): string {
  return createHash("sha256").update(JSON.stringify(billing, bigintReplacer)).digest("hex");
}

export function buildAuditReport(input: {
  range: TopicRange;
  namespace: AuditNamespace;
  billing: BillingConfig;
  counts: RecomputeCounts;
  checked: Partial<Record<Store, number>>;
  differences: Difference[];
  holds?: HoldsReport;
}): AuditReport {
  const summary = STORES.filter((store) => input.checked[store] !== undefined).map((store) => ({
    store,
    checked: input.checked[store]!,
    differences: input.differences.filter((difference) => difference.store === store).length,
  }));
  return {
    report_version: 1,
    mode: input.range.complete ? "complete" : "delta",
    topic: input.range.topic,
    incarnation: input.range.incarnation ?? 0,
    source: sourceOf(input.range),
    partitions: input.range.partitions,
    namespace: input.namespace,
    billing_config_sha256: billingConfigHash(input.billing),
    counts: { ...input.counts },
    summary,
    ...(input.holds === undefined ? {} : { holds: input.holds }),
    differences: input.differences,
  };
}

export function reportJson(report: AuditReport): string {
  return `${JSON.stringify(report, bigintReplacer, 2)}\n`;
}

const SHOWN = 20;

/** A difference's first two records: `account/record_id` where the ids alone repeat across accounts. */
function shownIds(difference: Difference): string[] {
  const accounts = difference.record_account_keys;
  return difference.record_ids
    .slice(0, 2)
    .map((id, index) => (accounts?.[index] === undefined ? id : `${accounts[index]}/${id}`));
}

/** The summary for a person: per store what was checked and how many differ, then the first differences. */
/**
 * Why a delta audit of the topic's own incarnation compares less than a complete one. When no range was
 * asked for, the log's start has moved past offset 0: the topic's retention removed records, so no
 * complete audit of it is possible any more. Said, not left to the `(delta)` in the title.
 */
function deltaNote(report: AuditReport): string[] {
  if (report.mode !== "delta" || report.incarnation > 0) return [];
  const started = report.partitions.filter((partition) => partition.from !== "0");
  if (started.length === 0) return [];
  const where = started.map((partition) => `${partition.partition} at ${partition.from}`).join(", ");
  return [
    `Delta audit: partitions ${where} are read from past offset 0, so the records before are not recomputed and balances, ledgers and rollups are not compared (only the rows of the records read). ` +
      "Without --from-time or --from-offset this means the topic's retention has removed its first records: a complete audit needs the input topic kept whole (retention.ms=-1 or tiered storage, docs/operations.md).",
  ];
}

export function formatSummary(report: AuditReport, title = "Audit"): string {
  const c = report.counts;
  const lines = [
    `${title} of ${report.topic}${report.incarnation > 0 ? ` incarnation ${report.incarnation} (stored as ${report.source})` : ""} (${report.mode}): ${c.messages} messages, ${c.records} records applied, ` +
      `${c.skipped_undecodable + c.skipped_key_mismatch + c.skipped_wrong_partition + c.skipped_unauthorized} skipped as the processor dead-letters them, ` +
      `${c.duplicates_ignored} duplicates, ${c.rejected} rejected, ${c.hold_decisions} hold decisions`,
    ...(report.incarnation > 0
      ? [
          `${report.topic} was created again (incarnation ${report.incarnation}): balances, ledgers and billed amounts carry records of the topic before, which no log holds; only the rows stored as ${report.source} are compared (records, tokens, cost). See docs/audit.md.`,
        ]
      : []),
    ...deltaNote(report),
    ...(report.holds !== undefined && report.holds.unverifiable + report.holds.undecodable > 0
      ? [
          `${report.holds.topic}: ${report.holds.unverifiable} decisions not comparable (the topic's retention removed messages), ${report.holds.undecodable} messages that are not a decision`,
        ]
      : []),
    "",
    renderTable(
      ["store", "checked", "differences"],
      report.summary.map((row) => [row.store, String(row.checked), String(row.differences)]),
    ),
  ];
  if (report.differences.length > 0) {
    lines.push(
      "",
      renderTable(
        ["store", "subject", "field", "expected", "actual", "delta", "records"],
        report.differences
          .slice(0, SHOWN)
          .map((d) => [
            d.store,
            d.subject,
            d.field,
            d.expected ?? "-",
            d.actual ?? "-",
            d.delta ?? "-",
            d.record_ids_total === 0
              ? "-"
              : `${shownIds(d).join(" ")}${d.record_ids_total > 2 ? ` (+${d.record_ids_total - 2})` : ""}`,
          ]),
      ),
    );
    if (report.differences.length > SHOWN)
      lines.push(`... and ${report.differences.length - SHOWN} more in the report`);
  }
  return `${lines.join("\n")}\n`;
}
