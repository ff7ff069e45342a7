import { z } from "zod";

/** Money is integer micro-units of the currency (1 USD = 1_000_000 micros), as bigint in memory. */
export const MICROS_PER_UNIT = 1_000_000n;

/** Micros as they arrive in JSON: a non-negative integer number or a decimal integer string. */
export const microsInputSchema = z
  .union([z.string().regex(/^[0-9]{1,30}$/, "must be a non-negative integer string"), z.int().nonnegative()])
  .transform((value) => BigInt(value));

export const microsSchema = z.bigint().nonnegative();
export const signedMicrosSchema = z.bigint();

/** Token counts: non-negative safe integers, bounded so that sums over a record stay safe. */
export const MAX_TOKENS_PER_FIELD = 1_000_000_000_000;
export const tokenCountSchema = z.int().nonnegative().max(MAX_TOKENS_PER_FIELD);

/**
 * Renders micros as a decimal string for display only (the seed's `cost`, `revenue_share`,
 * `mozaiks_fee`): 15000n -> "0.015", 450000n -> "0.45", 0n -> "0". Never parse it back for arithmetic.
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
