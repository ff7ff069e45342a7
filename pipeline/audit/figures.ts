import type { AccountState } from "../core/index.ts";

/**
 * The figures the audit compares, one list per store. Every value is held as a bigint (token counts
 * included) so one comparison and one delta rule serve all of them; paused chats are a canonical string.
 */
export const ACCOUNT_FIELDS = [
  "allowance_tokens",
  "trial_used_tokens",
  "credited_tokens",
  "paid_used_tokens",
  "tokens_used",
  "cost_micros",
  "billed_micros",
  "creator_share_micros",
  "platform_fee_micros",
  "paid_amount_micros",
] as const;
export type AccountField = (typeof ACCOUNT_FIELDS)[number];

/**
 * An account's sums of voids and refunds (its `corrections`, less the memos), reported as
 * `corrections.<field>`: a platform account's refunds are in no revenue ledger, so only these show them.
 */
export const CORRECTION_FIELDS = [
  "voided_tokens",
  "voided_cost_micros",
  "reversed_billed_micros",
  "reversed_creator_share_micros",
  "reversed_platform_fee_micros",
  "refunded_micros",
] as const;
export type CorrectionField = (typeof CORRECTION_FIELDS)[number];
/** The names the report gives them. */
export const CORRECTED_FIELDS = CORRECTION_FIELDS.map((field) => `corrections.${field}` as const);

/** Per app and level, as ClickHouse holds them (raw events and rollups). */
export const USAGE_FIELDS = [
  "records",
  "tokens",
  // How each record was paid for: allowance (trial) or paid tokens. Analysts' trial figures read them.
  "trial_tokens",
  "paid_tokens",
  "cost_micros",
  "billed_micros",
  "creator_share_micros",
  "platform_fee_micros",
] as const;
export type UsageField = (typeof USAGE_FIELDS)[number];

/**
 * Per app and level, as ClickHouse's adjustments table holds them: one row per void or refund, its amounts
 * negative as the core emits them (core/corrections.ts). Creators' statements are paid from these rows.
 */
export const ADJUSTMENT_FIELDS = [
  "records",
  "trial_tokens",
  "paid_tokens",
  "grant_tokens",
  "cost_micros",
  "billed_micros",
  "creator_share_micros",
  "platform_fee_micros",
] as const;
export type AdjustmentField = (typeof ADJUSTMENT_FIELDS)[number];

/** Per app, as the MongoDB revenue ledgers hold them (summed over partitions). */
export const REVENUE_FIELDS = [
  "records",
  "billed_micros",
  "creator_share_micros",
  "platform_fee_micros",
  "adjustments",
  "reversed_billed_micros",
  "reversed_creator_share_micros",
  "reversed_platform_fee_micros",
] as const;
export type RevenueField = (typeof REVENUE_FIELDS)[number];

export type Figures<F extends string> = Record<F, bigint>;

export function zeroFigures<F extends string>(fields: readonly F[]): Figures<F> {
  const figures = {} as Figures<F>;
  for (const field of fields) figures[field] = 0n;
  return figures;
}

/** A stored number or int64 as a bigint; anything else (missing, wrong type) as null. */
export function toBigint(value: unknown): bigint | null {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  if (typeof value === "string" && /^-?[0-9]+$/.test(value)) return BigInt(value);
  // The driver hands back BSON Long/Int32/Double wrappers for values it did not write itself.
  if (value !== null && typeof value === "object" && "toBigInt" in value) {
    return (value as { toBigInt(): bigint }).toBigInt();
  }
  return null;
}

/** An account's compared figures, from the core's state or from a stored document alike. */
export function accountFigures(
  account: Partial<Record<AccountField, unknown>>,
): Record<AccountField, bigint | null> {
  const figures = {} as Record<AccountField, bigint | null>;
  for (const field of ACCOUNT_FIELDS) figures[field] = toBigint(account[field]);
  return figures;
}

/** An account's correction sums (0 without corrections), from the core's state or a stored document. */
export function correctionFigures(
  corrections: unknown,
): Record<`corrections.${CorrectionField}`, bigint | null> {
  const sums = (typeof corrections === "object" && corrections !== null ? corrections : {}) as Record<
    string,
    unknown
  >;
  const figures = {} as Record<`corrections.${CorrectionField}`, bigint | null>;
  CORRECTION_FIELDS.forEach((field, i) => {
    figures[CORRECTED_FIELDS[i]!] = toBigint(sums[field] ?? 0);
  });
  return figures;
}

/**
 * Paused chats of an account as one comparable string, sorted by chat id:
 * `chat-1(trial_exhausted) chat-2(insufficient_tokens,resumable)`; "" when none.
 */
export function pausedChatsOf(chats: AccountState["chats"] | undefined | null): string {
  if (chats === undefined || chats === null || typeof chats !== "object") return "";
  return Object.keys(chats)
    .sort()
    .flatMap((chatId) => {
      const chat = chats[chatId];
      if (chat === undefined || chat.paused !== true) return [];
      return [`${chatId}(${chat.pause_reason ?? ""}${chat.can_resume ? ",resumable" : ""})`];
    })
    .join(" ");
}
