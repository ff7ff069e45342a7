/**
 * The stored form of an account document. It is the account state as the core keeps it, except the
 * two maps that grow with the account's records: the correction memos (pipeline/core/corrections.ts)
 * are one string of compact tuples, `corrections.usage_packed`, and the dedupe ids (dedupe.ts) one
 * string of id and event-time pairs, `dedupe.seen_packed`; neither is a map of fields.
 *
 * Why: an account remembers every usage record it can still correct (up to 10,000 by default), and as
 * named fields each memo took about 207 BSON bytes. On the simulate workload the memos made the average
 * account document 18.5 KB instead of 3.1 KB, and every flush rewrites whole documents, so FerretDB
 * (which stores them as PostgreSQL JSONB) parsed six times the bytes. As tuples in one string a memo
 * takes about a third of that and is a single value for the server. Documents written before keep
 * `corrections.usage` as a map and are read as they are; the next write of the account packs it.
 */
import { z } from "zod";
import { boundedMap } from "../../pipeline/core/bson-size-bound.ts";
import type { UsageMemo } from "../../pipeline/core/corrections.ts";
import type { AccountState } from "../../pipeline/core/index.ts";
import type { LayeredMap } from "../../pipeline/core/layered-map.ts";
import { formatIssues } from "../../schemas/decode.ts";

/**
 * One memo: [record_id, at_ms, app (0 when it is the account's own), chat_id, trial, paid, cost, billed,
 * creator bp, refunded, voided (0/1), grants?, drawn_ms?, written_off_before?]. Money as decimal strings
 * (exact past 2^53). A memo with a later element and no grants holds 0 in the grants' place; one with
 * written_off_before and no drawn_ms holds null in drawn_ms' place.
 */
type PackedMemo = [
  string,
  number,
  string | 0,
  string,
  number,
  number,
  string,
  string,
  number,
  string,
  0 | 1,
  (Record<string, number> | 0)?,
  (number | null)?,
  number?,
];

const count = z.number().int().nonnegative();
const money = z.string().regex(/^-?\d+$/);
const packedFields = [
  z.string(),
  z.number(),
  z.union([z.string(), z.literal(0)]),
  z.string(),
  count,
  count,
  money,
  money,
  count,
  money,
  z.union([z.literal(0), z.literal(1)]),
] as const;
// The grants (or 0), the draw time (or null) and the write-offs before the draw, when there are any, are a
// twelfth, thirteenth and fourteenth element.
const packedSchema = z.array(
  z.tuple([
    ...packedFields,
    z.union([z.record(z.string(), count), z.literal(0)]).optional(),
    z.number().int().nullable().optional(),
    count.optional(),
  ]),
);

function pack(usage: ReadonlyMap<string, UsageMemo>, ownApp: string | null): string {
  const tuples: PackedMemo[] = [];
  usage.forEach((m, id) => {
    const tuple: PackedMemo = [
      id,
      m.at_ms,
      m.enterprise_id === ownApp ? 0 : m.enterprise_id,
      m.chat_id,
      m.trial_tokens,
      m.paid_tokens,
      m.cost_micros.toString(),
      m.billed_micros.toString(),
      m.creator_share_bp,
      m.refunded_micros.toString(),
      m.voided ? 1 : 0,
    ];
    const writtenOff = m.written_off_before;
    if (m.grants !== undefined || m.drawn_ms !== undefined || writtenOff !== undefined)
      tuple.push(m.grants ?? 0);
    if (m.drawn_ms !== undefined || writtenOff !== undefined) tuple.push(m.drawn_ms ?? null);
    if (writtenOff !== undefined) tuple.push(writtenOff);
    tuples.push(tuple);
  });
  return JSON.stringify(tuples);
}

/**
 * Dedupe ids as `[id, event ms, id, event ms, ...]` in the map's order. FerretDB keeps a map of ids as
 * one JSONB field per id, with a type entry per field beside it; a string is one value.
 */
const seenPackedSchema = z
  .array(z.union([z.string(), z.number()]))
  .refine((list) => list.length % 2 === 0, "expected id, time pairs")
  .refine(
    (list) =>
      list.every((value, i) => (i % 2 === 0 ? typeof value === "string" : Number.isSafeInteger(value))),
    "expected a string id then an integer time in each pair",
  );

function packSeen(seen: ReadonlyMap<string, number>): string {
  const flat: (string | number)[] = [];
  // forEach walks a LayeredMap's entries without the snapshot its iterator takes.
  seen.forEach((at, id) => {
    flat.push(id, at);
  });
  return JSON.stringify(flat);
}

function unpackSeen(packed: string): LayeredMap<string, number> {
  const flat = seenPackedSchema.parse(JSON.parse(packed));
  // In the stored order: a reloaded account is the same value.
  const seen = boundedMap<number>();
  for (let i = 0; i < flat.length; i += 2) seen.set(flat[i] as string, flat[i + 1] as number);
  return seen;
}

function unpack(packed: string, ownApp: string | null): LayeredMap<string, UsageMemo> {
  const tuples = packedSchema.parse(JSON.parse(packed));
  const usage = boundedMap<UsageMemo>();
  for (const [
    id,
    at,
    app,
    chat,
    trial,
    paid,
    cost,
    billed,
    bp,
    refunded,
    voided,
    grants,
    drawn,
    writtenOff,
  ] of tuples) {
    // Same field order as the core builds a memo (apply-usage.ts), so a reloaded account is the same value.
    usage.set(id, {
      at_ms: at,
      enterprise_id: app === 0 ? (ownApp ?? "") : app,
      chat_id: chat,
      trial_tokens: trial,
      paid_tokens: paid,
      cost_micros: BigInt(cost),
      billed_micros: BigInt(billed),
      creator_share_bp: bp,
      refunded_micros: BigInt(refunded),
      voided: voided === 1,
      ...(grants === undefined || grants === 0 ? {} : { grants }),
      ...(drawn === undefined || drawn === null ? {} : { drawn_ms: drawn }),
      ...(writtenOff === undefined ? {} : { written_off_before: writtenOff }),
    });
  }
  return usage;
}

/** The document body to write for an account (a shallow copy: the state itself is not changed). */
export function toStoredAccount(account: AccountState): object {
  const { seen, ...dedupe } = account.dedupe;
  const stored: Record<string, unknown> = { ...account, dedupe: { ...dedupe, seen_packed: packSeen(seen) } };
  if (account.corrections !== undefined) {
    const { usage, ...rest } = account.corrections;
    stored.corrections = { ...rest, usage_packed: pack(usage, account.enterprise_id) };
  }
  return stored;
}

/** What a stored document's field holds, read back; `problem` names the field that cannot be. */
function unpacked<T>(
  field: string,
  packed: unknown,
  read: (text: string) => T,
): { value: T } | { problem: string } {
  if (typeof packed !== "string") return { problem: `${field}: expected a string` };
  try {
    return { value: read(packed) };
  } catch (error) {
    const why = error instanceof z.ZodError ? formatIssues(error.issues) : (error as Error).message;
    return { problem: `${field}: ${why}` };
  }
}

/** Dedupe ids of a document written before packing: a map of fields, id -> event ms. */
const seenFieldsSchema = z.record(z.string(), z.number());

/** Memos of a document written before packing are read as they were stored (only the map is checked). */
const legacyMemosSchema = z.record(
  z.string(),
  z.custom<UsageMemo>((memo) => typeof memo === "object" && memo !== null),
);

/**
 * The account state of a stored body, or why it cannot be read (a corrupt or hand-edited pack).
 * Documents written before packing (maps of fields) are read into the same Maps; the next write packs them.
 */
export function fromStoredAccount(
  body: Record<string, unknown>,
): { account: AccountState } | { problem: string } {
  const account: Record<string, unknown> = { ...body };
  const dedupe = body.dedupe as Record<string, unknown> | undefined | null;
  if (typeof dedupe === "object" && dedupe !== null) {
    // A map beside the pack (a hand-edited document) is ignored: the pack is what agentmeter wrote.
    const { seen_packed: packed, seen: fields, ...rest } = dedupe;
    const seen =
      "seen_packed" in dedupe
        ? unpacked("dedupe.seen_packed", packed, unpackSeen)
        : fieldsMap("dedupe.seen", fields, seenFieldsSchema);
    if ("problem" in seen) return seen;
    // Same field order as the core builds the dedupe state (account.ts), so a reloaded account is equal.
    account.dedupe = { seen: seen.value, ...rest };
  }
  const corrections = body.corrections as Record<string, unknown> | undefined | null;
  if (typeof corrections === "object" && corrections !== null) {
    const { usage_packed: packed, usage: fields, ...rest } = corrections;
    const ownApp = typeof body.enterprise_id === "string" ? body.enterprise_id : null;
    const usage =
      "usage_packed" in corrections
        ? unpacked("corrections.usage_packed", packed, (text) => unpack(text, ownApp))
        : fieldsMap("corrections.usage", fields, legacyMemosSchema);
    if ("problem" in usage) return usage;
    account.corrections = { usage: usage.value, ...rest };
  }
  return { account: account as unknown as AccountState };
}

/** A map of fields (a document written before packing) as a Map in the stored order. */
function fieldsMap<V>(
  field: string,
  fields: unknown,
  schema: z.ZodType<Record<string, V>>,
): { value: LayeredMap<string, V> } | { problem: string } {
  const parsed = schema.safeParse(fields);
  if (!parsed.success) return { problem: `${field}: ${formatIssues(parsed.error.issues)}` };
  return { value: boundedMap(Object.entries(parsed.data)) };
}
