import type { AccountState, ChatState } from "../core/index.ts";
import { emptyMap } from "../core/own.ts";
import {
  ACCOUNT_FIELDS,
  ADJUSTMENT_FIELDS,
  accountFigures,
  CORRECTED_FIELDS,
  CORRECTION_FIELDS,
  correctionFigures,
  type Figures,
  pausedChatsOf,
  REVENUE_FIELDS,
  toBigint,
  USAGE_FIELDS,
  type UsageField,
  zeroFigures,
} from "./figures.ts";
import type {
  AdjustmentTotals,
  ClickHouseSource,
  GroupTotals,
  StoredRowId,
  UsageTotals,
} from "./read-clickhouse.ts";
import type { MongoActual } from "./read-mongo.ts";
import type { AccountIds, AccountTrail, AppLevelGroup, Expected } from "./recompute.ts";

export const STORES = [
  "mongodb.accounts",
  "mongodb.revenue",
  "clickhouse.usage_events",
  "clickhouse.usage_by_hour",
  "clickhouse.usage_by_minute",
  "clickhouse.adjustments",
  "kafka.hold_decisions",
] as const;
export type Store = (typeof STORES)[number];

/** One figure a store holds that the billing core does not agree with. Money and tokens as decimal strings. */
export interface Difference {
  store: Store;
  /** The account key, the app, or `app/level`: what the figure belongs to. */
  subject: string;
  enterprise_id: string | null;
  account_key: string | null;
  level: string | null;
  field: string;
  expected: string | null;
  actual: string | null;
  /** actual - expected, for numeric figures. */
  delta: string | null;
  /** How record_ids were chosen. */
  explained_by: string;
  /** The records that explain the difference (capped; record_ids_total says how many there are). */
  record_ids: string[];
  record_ids_total: number;
  /**
   * The account of each of record_ids, in the same order. Only where the ids alone do not name the
   * records: a record id is unique per account, and this difference's records (an app's, of several
   * accounts) hold one id under two accounts or more. Absent otherwise, so the report is the same as
   * without it whenever record ids do not repeat across accounts.
   */
  record_account_keys?: string[];
}

export const RECORD_IDS_CAP = 50;

export interface ActualStores {
  mongo?: MongoActual;
  clickhouse: Partial<Record<ClickHouseSource, Map<string, UsageTotals>>>;
  /** ClickHouse's adjustments table, read on a complete audit. */
  adjustments?: Map<string, AdjustmentTotals>;
}

function show(value: bigint | string | null): string | null {
  return value === null ? null : value.toString();
}

type Evidence = Pick<Difference, "explained_by" | "record_ids" | "record_ids_total" | "record_account_keys">;

/** `accounts`: the account of each of `ids` (the first RECORD_IDS_CAP at least), when ids alone are ambiguous. */
function evidence(explainedBy: string, ids: readonly string[], accounts?: readonly string[]): Evidence {
  return {
    explained_by: explainedBy,
    record_ids: ids.slice(0, RECORD_IDS_CAP),
    record_ids_total: ids.length,
    ...(accounts === undefined ? {} : { record_account_keys: accounts.slice(0, RECORD_IDS_CAP) }),
  };
}

/** Whether some record id of the list belongs to two of its accounts or more. */
export function idsRepeatAcrossAccounts(list: AccountIds): boolean {
  if (list.accounts.length < 2) return false;
  const accountOfId = new Map<string, number>();
  for (let i = 0; i < list.ids.length; i++) {
    const seen = accountOfId.get(list.ids[i]!);
    if (seen === undefined) accountOfId.set(list.ids[i]!, list.accountOf[i]!);
    else if (seen !== list.accountOf[i]) return true;
  }
  return false;
}

/** An app's records as evidence, with their accounts when the ids alone could name another account's. */
function listEvidence(explainedBy: string, list: AccountIds | undefined): Evidence {
  if (list === undefined) return evidence(explainedBy, []);
  if (!idsRepeatAcrossAccounts(list)) return evidence(explainedBy, list.ids);
  const accounts = list.accountOf.slice(0, RECORD_IDS_CAP).map((at) => list.accounts[at]!);
  return evidence(explainedBy, list.ids, accounts);
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The evidence of a difference in a table of one row per record (usage_events, adjustments) of one app
 * and level: the records the core says must have a row and have none (in the order applied), then the
 * rows no record explains (by record id, then account). Records and rows are matched by account and
 * record id: an id is unique per account only, so one account's row must not stand in for another's
 * missing one. Undefined when every record has its row and every row its record.
 */
export function rowEvidence(
  table: string,
  want: AccountIds | undefined,
  stored: readonly StoredRowId[],
): Evidence | undefined {
  const pair = (account: string, id: string) => `${account}\u0000${id}`;
  const storedPairs = new Set(stored.map((row) => pair(row.account_key, row.record_id)));
  const wantPairs = new Set<string>();
  // Each record id's account, or null once a second account has it.
  const accountOfId = new Map<string, string | null>();
  const note = (id: string, account: string) => {
    const seen = accountOfId.get(id);
    if (seen === undefined) accountOfId.set(id, account);
    else if (seen !== account) accountOfId.set(id, null);
  };
  const missing: StoredRowId[] = [];
  for (let i = 0; i < (want?.ids.length ?? 0); i++) {
    const id = want!.ids[i]!;
    const account = want!.accounts[want!.accountOf[i]!]!;
    const key = pair(account, id);
    wantPairs.add(key);
    note(id, account);
    if (!storedPairs.has(key)) missing.push({ account_key: account, record_id: id });
  }
  for (const row of stored) note(row.record_id, row.account_key);
  const extra = stored
    .filter((row) => !wantPairs.has(pair(row.account_key, row.record_id)))
    .sort((a, b) => compareText(a.record_id, b.record_id) || compareText(a.account_key, b.account_key));
  if (missing.length + extra.length === 0) return undefined;
  const rows = [...missing, ...extra];
  const ambiguous = rows.some((row) => accountOfId.get(row.record_id) === null);
  return evidence(
    `${missing.length} record(s) with no row in ${table}, then ${extra.length} row(s) with no record in the topic`,
    rows.map((row) => row.record_id),
    ambiguous ? rows.slice(0, RECORD_IDS_CAP).map((row) => row.account_key) : undefined,
  );
}

/**
 * The records of the trail after a watermark on `partition` at `wm`: on one partition, those past that
 * offset; on several (a partition count that changed), those applied after the last record of that
 * partition at or before it. Undefined when the watermark says nothing about the trail.
 */
function afterWatermark(trail: AccountTrail, partition: bigint, wm: bigint): string[] | undefined {
  if (trail.partitions === undefined) {
    if (partition !== BigInt(trail.partition)) return undefined;
    return trail.ids.filter((_id, index) => BigInt(trail.offsets[index]!) > wm);
  }
  let last = -1;
  for (let i = 0; i < trail.ids.length; i++)
    if (BigInt(trail.partitions[i]!) === partition && BigInt(trail.offsets[i]!) <= wm) last = i;
  return last < 0 ? undefined : trail.ids.slice(last + 1);
}

/**
 * The records of an account that explain a difference on its document: those after the document's
 * watermark when it is behind the topic (not applied yet, or lost), else all of them (the figures were
 * changed by something that is not a record). A watermark of another source (another incarnation of the
 * topic: `source`) is a position in another log and says nothing about this one.
 */
function accountEvidence(
  trail: AccountTrail | undefined,
  doc: Record<string, unknown> | undefined,
  source: string | undefined,
) {
  if (trail === undefined) return evidence("no record of this account in the topic", []);
  const wm = doc === undefined ? null : toBigint(doc.wm_offset);
  const partition = doc === undefined ? null : toBigint(doc.wm_partition);
  const sameSource = source === undefined || doc?.wm_topic === source;
  if (wm !== null && partition !== null && sameSource) {
    const after = afterWatermark(trail, partition, wm);
    if (after !== undefined && after.length > 0)
      return evidence(`records after the document's watermark (wm_offset ${wm})`, after);
  }
  return evidence("every record of the account, in topic order", trail.ids);
}

type DifferenceBase = Omit<Difference, "field" | "expected" | "actual" | "delta">;

/**
 * A difference for every field that differs. `base` may be a function: it is then called only when a
 * field differs (evidence that costs a pass over an app's records is built for differing groups only).
 * `record_account_keys`, when there are any, go last, so every other field keeps its place in the JSON.
 */
function compareFigures<F extends string>(
  fields: readonly F[],
  expected: Record<F, bigint | null>,
  actual: Record<F, bigint | null>,
  base: DifferenceBase | (() => DifferenceBase),
  out: Difference[],
): void {
  let shared: DifferenceBase | undefined;
  for (const field of fields) {
    const want = expected[field];
    const got = actual[field];
    if (want === got) continue;
    shared ??= typeof base === "function" ? base() : base;
    const { record_account_keys: accounts, ...rest } = shared;
    out.push({
      ...rest,
      field,
      expected: show(want),
      actual: show(got),
      delta: want !== null && got !== null ? (got - want).toString() : null,
      ...(accounts === undefined ? {} : { record_account_keys: accounts }),
    });
  }
}

/**
 * An account of the billing state reduced to what diffAccounts reads: its key, level and app, the
 * ACCOUNT_FIELDS figures, and its paused chats. The audit's recompute units hand accounts on in this
 * form (pipeline/audit/units.ts), without the dedupe ids and correction memos: over a million records
 * those are most of the state, and rebuilding their thousands of distinct keys in another thread took
 * longer than computing them. A comparison that reads more of an account must keep it here too.
 */
export function comparedAccount(account: AccountState): AccountState {
  const view: Record<string, unknown> = {
    account_key: account.account_key,
    level: account.level,
    enterprise_id: account.enterprise_id,
  };
  for (const field of ACCOUNT_FIELDS) view[field] = account[field];
  if (account.corrections !== undefined) {
    const sums: Record<string, unknown> = {};
    for (const field of CORRECTION_FIELDS) sums[field] = account.corrections[field];
    view.corrections = sums;
  }
  const chats = emptyMap<ChatState>();
  for (const chatId of Object.keys(account.chats ?? {})) {
    const chat = account.chats[chatId]!;
    if (chat.paused === true) chats[chatId] = chat;
  }
  view.chats = chats;
  return view as unknown as AccountState;
}

function diffAccounts(expected: Expected, mongo: MongoActual, out: Difference[]): void {
  const keys = new Set([...Object.keys(expected.state.accounts), ...mongo.accounts.keys()]);
  for (const key of [...keys].sort()) {
    const want = expected.state.accounts[key];
    const stored = mongo.accounts.get(key);
    const trail = expected.trails.get(key);
    const doc = stored?.doc as Record<string, unknown> | undefined;
    const base = {
      store: "mongodb.accounts" as const,
      subject: key,
      enterprise_id: want?.enterprise_id ?? stored?.enterprise_id ?? null,
      account_key: key,
      level: want?.level ?? stored?.level ?? null,
      ...accountEvidence(trail, doc, mongo.source),
    };
    if (want === undefined || doc === undefined) {
      out.push({
        ...base,
        field: "document",
        expected: want === undefined ? null : "present",
        actual: doc === undefined ? null : "present",
        delta: null,
      });
      continue;
    }
    compareFigures(ACCOUNT_FIELDS, accountFigures(want), accountFigures(doc), base, out);
    compareFigures(
      CORRECTED_FIELDS,
      correctionFigures(want.corrections),
      correctionFigures(doc.corrections),
      base,
      out,
    );
    const wantPaused = pausedChatsOf(want.chats);
    const gotPaused = pausedChatsOf(doc.chats as typeof want.chats | undefined);
    if (wantPaused !== gotPaused) {
      out.push({ ...base, field: "paused_chats", expected: wantPaused, actual: gotPaused, delta: null });
    }
  }
}

function diffRevenue(expected: Expected, mongo: MongoActual, out: Difference[]): void {
  const apps = new Set([...expected.revenue.keys(), ...mongo.revenue.keys()]);
  for (const app of [...apps].sort()) {
    const want = expected.revenue.get(app);
    compareFigures(
      REVENUE_FIELDS,
      want?.figures ?? zeroFigures(REVENUE_FIELDS),
      mongo.revenue.get(app) ?? zeroFigures(REVENUE_FIELDS),
      () => ({
        store: "mongodb.revenue",
        subject: app,
        enterprise_id: app,
        account_key: null,
        level: "app_usage",
        ...listEvidence("the app's billed usage records, in topic order", want),
      }),
      out,
    );
  }
}

/** A table of ClickHouse summed per app and level against the core's groups of the same key. */
function diffGroups<F extends string>(
  store: Store,
  expected: Map<string, AppLevelGroup<F>>,
  actual: Map<string, GroupTotals<F>>,
  fields: readonly F[],
  explainedBy: string,
  out: Difference[],
): void {
  const zero = zeroFigures(fields) as Figures<F>;
  const keys = new Set([...expected.keys(), ...actual.keys()]);
  for (const key of [...keys].sort()) {
    const want = expected.get(key);
    const got = actual.get(key);
    const enterpriseId = want?.enterprise_id ?? got?.enterprise_id ?? "";
    const level = want?.level ?? got?.level ?? "";
    compareFigures(
      fields,
      want?.figures ?? zero,
      got?.figures ?? zero,
      () => ({
        store,
        subject: `${enterpriseId}/${level}`,
        enterprise_id: enterpriseId,
        account_key: null,
        level,
        ...listEvidence(explainedBy, want),
      }),
      out,
    );
  }
}

/** Every difference between the core's figures and the stores read, sorted by store, subject and field. */
export function diffStores(
  expected: Expected,
  actual: ActualStores,
  usageFields: readonly UsageField[] = USAGE_FIELDS,
): Difference[] {
  const out: Difference[] = [];
  if (actual.mongo !== undefined) {
    diffAccounts(expected, actual.mongo, out);
    diffRevenue(expected, actual.mongo, out);
  }
  for (const source of ["usage_events", "usage_by_hour", "usage_by_minute"] as const) {
    const totals = actual.clickhouse[source];
    if (totals !== undefined)
      diffGroups(
        `clickhouse.${source}`,
        expected.usage,
        totals,
        usageFields,
        "the app's usage records at this level, in topic order",
        out,
      );
  }
  if (actual.adjustments !== undefined)
    diffGroups(
      "clickhouse.adjustments",
      expected.adjustments,
      actual.adjustments,
      ADJUSTMENT_FIELDS,
      "the app's voids and refunds at this level, in topic order",
      out,
    );
  return sortDifferences(out);
}

const ORDERED_FIELDS: string[] = [
  "document",
  ...ACCOUNT_FIELDS,
  ...CORRECTED_FIELDS,
  "paused_chats",
  ...USAGE_FIELDS,
  ...REVENUE_FIELDS,
];
// Only the names not listed yet: a name met again would move, and reorder the reports of the other stores.
const FIELD_ORDER = new Map<string, number>(
  [...ORDERED_FIELDS, ...ADJUSTMENT_FIELDS.filter((field) => !ORDERED_FIELDS.includes(field))].map(
    (field, index) => [field, index],
  ),
);

export function sortDifferences(differences: Difference[]): Difference[] {
  return differences.sort(
    (a, b) =>
      STORES.indexOf(a.store) - STORES.indexOf(b.store) ||
      compareText(a.subject, b.subject) ||
      (FIELD_ORDER.get(a.field) ?? 99) - (FIELD_ORDER.get(b.field) ?? 99) ||
      compareText(a.field, b.field),
  );
}
