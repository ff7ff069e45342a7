/**
 * One whole in basis points: shares (`creator_share_bp`), budget thresholds (`thresholds_bp`) and cost
 * ratios are integers over this, so money and token arithmetic stays exact.
 */
export const BASIS_POINTS = 10_000;
/** The same divisor for bigint money arithmetic. */
export const BASIS_POINTS_BIG = BigInt(BASIS_POINTS);
