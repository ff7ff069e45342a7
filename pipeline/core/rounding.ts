/**
 * The one rounding rule of the core: exact integer numerator, divided once, rounded half up.
 * Only ever called with non-negative operands (costs, prices, token counts).
 */
export function divideRoundHalfUp(numerator: bigint, denominator: bigint): bigint {
  if (denominator <= 0n) throw new RangeError("denominator must be positive");
  return (2n * numerator + denominator) / (2n * denominator);
}
