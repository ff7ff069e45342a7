/**
 * The stored form of an account document. It is the account state as the core keeps it, except the
 * correction memos (pipeline/core/corrections.ts): those are one string of compact tuples,
 * `corrections.usage_packed`, not a map of objects.
 *
 * Why: an account remembers every usage record it can still correct (up to 10,000 by default), and as
 * named fields each memo took about 207 BSON bytes. On the simulate workload the memos made the average
 * account document 18.5 KB instead of 3.1 KB, and every flush rewrites whole documents, so FerretDB
 * (which stores them as PostgreSQL JSONB) parsed six times the bytes. As tuples in one string a memo
 * takes about a third of that and is a single value for the server. Documents written before keep
 * `corrections.usage` as a map and are read as they are; the next write of the account packs it.
 */
import { z } from "zod";
import type { UsageMemo } from "../../pipeline/core/corrections.ts";
import type { AccountState } from "../../pipeline/core/index.ts";
import { emptyMap } from "../../pipeline/core/own.ts";
import { formatIssues } from "../../schemas/decode.ts";

/**
 * One memo: [record_id, at_ms, app (0 when it is the account's own), chat_id, trial, paid, cost, billed,
 * creator bp, refunded, voided (0/1), grants?]. Money as decimal strings (exact past 2^53).
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
  Record<string, number>?,
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
// The grants, when the record took any, are a twelfth element.
const packedSchema = z.array(
  z.tuple(packedFields, z.record(z.string(), count)).refine((t) => t.length <= 12),
);

function pack(usage: Record<string, UsageMemo>, ownApp: string | null): string {
  const tuples: PackedMemo[] = [];
  for (const id in usage) {
    const m = usage[id]!;
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
    if (m.grants !== undefined) tuple.push(m.grants);
    tuples.push(tuple);
  }
  return JSON.stringify(tuples);
}

function unpack(packed: string, ownApp: string | null): Record<string, UsageMemo> {
  const tuples = packedSchema.parse(JSON.parse(packed));
  const usage = emptyMap<UsageMemo>();
  for (const [id, at, app, chat, trial, paid, cost, billed, bp, refunded, voided, grants] of tuples) {
    // Same field order as the core builds a memo (apply-usage.ts), so a reloaded account is the same value.
    usage[id] = {
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
      ...(grants === undefined ? {} : { grants }),
    };
  }
  return usage;
}

/** The document body to write for an account (a shallow copy: the state itself is not changed). */
export function toStoredAccount(account: AccountState): object {
  if (account.corrections === undefined) return account;
  const { usage, ...rest } = account.corrections;
  return { ...account, corrections: { ...rest, usage_packed: pack(usage, account.enterprise_id) } };
}

/** The account state of a stored body, or why it cannot be read (a corrupt or hand-edited pack). */
export function fromStoredAccount(
  body: Record<string, unknown>,
): { account: AccountState } | { problem: string } {
  const corrections = body.corrections as Record<string, unknown> | undefined;
  if (corrections === undefined || corrections === null || !("usage_packed" in corrections))
    return { account: body as unknown as AccountState };
  const { usage_packed: packed, ...rest } = corrections;
  if (typeof packed !== "string") return { problem: "corrections.usage_packed: expected a string" };
  const ownApp = typeof body.enterprise_id === "string" ? body.enterprise_id : null;
  try {
    const usage = unpack(packed, ownApp);
    return { account: { ...body, corrections: { usage, ...rest } } as unknown as AccountState };
  } catch (error) {
    const why = error instanceof z.ZodError ? formatIssues(error.issues) : (error as Error).message;
    return { problem: `corrections.usage_packed: ${why}` };
  }
}
