import { z } from "zod";

/** Money is integer micro-units of the currency (1 USD = 1_000_000 micros), as bigint in memory. */
export const MICROS_PER_UNIT = 1_000_000n;

/** Largest value of a signed 64-bit integer: BSON int64 and ClickHouse Int64 hold money up to it. */
export const INT64_MAX = 9_223_372_036_854_775_807n;

/** The one message of every micros input that breaks the rule, so a producer learns the rule itself. */
export const MICROS_RULE = `must be a non-negative integer of at most 30 digits and at most ${INT64_MAX} (int64): a decimal string, or a JSON number up to ${Number.MAX_SAFE_INTEGER}`;

/**
 * Micros as they arrive in JSON: a non-negative integer number (safe integer) or a decimal integer
 * string, at most INT64_MAX either way (the stores' int64 would wrap past it). One message per field.
 */
export const microsInputSchema = z
  .union(
    [
      z.string().regex(/^[0-9]{1,30}$/, MICROS_RULE),
      z.int({ error: MICROS_RULE, abort: true }).nonnegative(MICROS_RULE),
    ],
    { error: MICROS_RULE },
  )
  .transform((value) => BigInt(value))
  .refine((value) => value <= INT64_MAX, MICROS_RULE);

export const microsSchema = z.bigint().nonnegative();
export const signedMicrosSchema = z.bigint();

/** Token counts: non-negative safe integers, bounded so that sums over a record stay safe. */
export const MAX_TOKENS_PER_FIELD = 1_000_000_000_000;
const TOKEN_RULE = `must be an integer from 0 to ${MAX_TOKENS_PER_FIELD}`;
/** One message per bad field (the bound first, aborting, so 1e16 is not also "not a safe integer"). */
export const tokenCountSchema = z
  .number()
  .max(MAX_TOKENS_PER_FIELD, { error: TOKEN_RULE, abort: true })
  .int({ error: TOKEN_RULE, abort: true })
  .min(0, TOKEN_RULE);

/**
 * Renders micros as a decimal string for display only (costs, shares and fees in currency units): 15000n -> "0.015", 450000n -> "0.45", 0n -> "0". Never parse it back for arithmetic.
 */
export function microsToDecimalString(micros: bigint): string {
  const negative = micros < 0n;
  const abs = negative ? -micros : micros;
  const whole = abs / MICROS_PER_UNIT;
  const fraction = (abs % MICROS_PER_UNIT).toString().padStart(6, "0").replace(/0+$/, "");
  const text = fraction === "" ? whole.toString() : `${whole}.${fraction}`;
  return negative ? `-${text}` : text;
}

/** JSON.stringify replacer that writes bigints as decimal strings (JSON has no bigint). */
export function bigintReplacer(_key: string, value: unknown): unknown {
  return typeof value === "bigint" ? value.toString() : value;
}
