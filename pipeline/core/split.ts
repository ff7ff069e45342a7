import type { Level } from "../../schemas/index.ts";
import { BASIS_POINTS_BIG } from "./basis-points.ts";
import type { BillingConfig } from "./billing-config.ts";
import { ownValue } from "./own.ts";
import { divideRoundHalfUp } from "./rounding.ts";

/**
 * The billed part of a record's cost: cost x paid tokens / all tokens, rounded half up.
 * All-trial records bill 0, all-paid records bill exactly the cost.
 */
export function billedPart(costMicros: bigint, paidTokens: number, tokensUsed: number): bigint {
  if (tokensUsed === 0 || paidTokens === 0) return 0n;
  if (paidTokens === tokensUsed) return costMicros;
  return divideRoundHalfUp(costMicros * BigInt(paidTokens), BigInt(tokensUsed));
}

/** Creator share of app usage in basis points (per app, else the default); 0 at platform level. */
export function creatorShareBp(level: Level, enterpriseId: string, config: BillingConfig): number {
  if (level === "platform") return 0;
  return ownValue(config.creator_share_bp.per_app, enterpriseId) ?? config.creator_share_bp.default;
}

export type Split = { creator_share_micros: bigint; platform_fee_micros: bigint };

/**
 * Creator gets floor(billed x bp / BASIS_POINTS); the platform gets the rest, so the remainder of the
 * division (less than one micro) always goes to the platform and the two parts sum to billed exactly.
 */
export function splitRevenue(billedMicros: bigint, creatorBp: number): Split {
  const creator = (billedMicros * BigInt(creatorBp)) / BASIS_POINTS_BIG;
  return { creator_share_micros: creator, platform_fee_micros: billedMicros - creator };
}
