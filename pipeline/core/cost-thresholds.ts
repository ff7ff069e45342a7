import { AgentmeterError } from "../../schemas/errors.ts";
import { BASIS_POINTS, BASIS_POINTS_BIG } from "./basis-points.ts";

/**
 * The workflow cost check: is a running session far more expensive than its workflow usually is?
 * Pure and exact: the averages arrive as sums and a count (from ClickHouse's
 * workflow_averages), and every comparison is done in integers, so a session exactly at the threshold
 * never flips with float rounding.
 */

/** A workflow's finished sessions, as the `workflow_averages` view reports them. */
export interface WorkflowAverages {
  enterprise_id: string;
  workflow_name: string;
  session_count: number;
  /** Sum over the sessions, so the average is exact: total / session_count. */
  total_cost_micros: bigint;
  total_tokens: number;
  avg_session_duration_seconds: number;
  avg_agents_per_session: number;
}

export interface CostThresholdInput {
  currentCostMicros: bigint;
  currentTokens: number;
  /** null: the workflow has no finished session yet. */
  averages: WorkflowAverages | null;
  /** How many times the average a session may cost before it is flagged (default 2). */
  multiple?: number;
  /** Fewer finished sessions than this is no baseline: nothing is flagged (default 3). */
  minSessions?: number;
}

/** `status` follows the cost alone (the budget event); the token comparison is reported beside it. */
export interface CostThresholdAnalysis {
  status: "no_baseline" | "within" | "exceeded";
  exceeds_cost_threshold: boolean;
  exceeds_token_threshold: boolean;
  /** The multiple in basis points (2x = 20000). */
  multiple_bp: number;
  session_count: number;
  current_cost_micros: bigint;
  current_tokens: number;
  /** Floor of the workflow's average; null without a baseline. */
  average_cost_micros: bigint | null;
  average_tokens: number | null;
  /** Floor of average x multiple: the figure a session must pass. */
  threshold_cost_micros: bigint | null;
  threshold_tokens: number | null;
  /** current / average in basis points, floored (25000 = 2.5x); null without a baseline or average 0. */
  cost_ratio_bp: number | null;
  token_ratio_bp: number | null;
}

const DEFAULT_COST_MULTIPLE = 2;
const DEFAULT_MIN_SESSIONS = 3;

function multipleBp(multiple: number): number {
  if (!Number.isFinite(multiple) || multiple <= 0 || multiple > 1_000) {
    throw new AgentmeterError(
      "CONFIG_INVALID",
      `cost threshold multiple must be a number above 0 and at most 1000, got ${String(multiple)}`,
    );
  }
  return Math.round(multiple * BASIS_POINTS);
}

/** current > average x multiple, with average = total / count: current x count x BASIS_POINTS > bp x total. */
function exceeds(current: bigint, total: bigint, count: bigint, bp: bigint): boolean {
  return current * count * BASIS_POINTS_BIG > bp * total;
}

function ratioBp(current: bigint, total: bigint, count: bigint): number | null {
  return total === 0n ? null : Number((current * count * BASIS_POINTS_BIG) / total);
}

/** NaN would compare false against every count and so make any single session a baseline. */
function checkedMinSessions(minSessions: number): number {
  if (!Number.isSafeInteger(minSessions) || minSessions < 0) {
    throw new AgentmeterError(
      "CONFIG_INVALID",
      `cost threshold minSessions must be a whole number from 0, got ${String(minSessions)}`,
    );
  }
  return minSessions;
}

export function checkWorkflowCostThresholds(input: CostThresholdInput): CostThresholdAnalysis {
  const bp = multipleBp(input.multiple ?? DEFAULT_COST_MULTIPLE);
  const minSessions = checkedMinSessions(input.minSessions ?? DEFAULT_MIN_SESSIONS);
  const averages = input.averages;
  const base = {
    multiple_bp: bp,
    current_cost_micros: input.currentCostMicros,
    current_tokens: input.currentTokens,
  };
  if (averages === null || averages.session_count < Math.max(1, minSessions)) {
    return {
      ...base,
      status: "no_baseline",
      exceeds_cost_threshold: false,
      exceeds_token_threshold: false,
      session_count: averages?.session_count ?? 0,
      average_cost_micros: null,
      average_tokens: null,
      threshold_cost_micros: null,
      threshold_tokens: null,
      cost_ratio_bp: null,
      token_ratio_bp: null,
    };
  }
  const count = BigInt(averages.session_count);
  const tokens = BigInt(averages.total_tokens);
  const currentTokens = BigInt(input.currentTokens);
  const costExceeded = exceeds(input.currentCostMicros, averages.total_cost_micros, count, BigInt(bp));
  const tokensExceeded = exceeds(currentTokens, tokens, count, BigInt(bp));
  return {
    ...base,
    status: costExceeded ? "exceeded" : "within",
    exceeds_cost_threshold: costExceeded,
    exceeds_token_threshold: tokensExceeded,
    session_count: averages.session_count,
    average_cost_micros: averages.total_cost_micros / count,
    average_tokens: Number(tokens / count),
    threshold_cost_micros: (averages.total_cost_micros * BigInt(bp)) / (count * BASIS_POINTS_BIG),
    threshold_tokens: Number((tokens * BigInt(bp)) / (count * BASIS_POINTS_BIG)),
    cost_ratio_bp: ratioBp(input.currentCostMicros, averages.total_cost_micros, count),
    token_ratio_bp: ratioBp(currentTokens, tokens, count),
  };
}
