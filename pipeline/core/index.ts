export {
  type AccountState,
  type AgentTotals,
  availableTokens,
  balanceSnapshot,
  type ChatState,
  canContinue,
  type GrantState,
  grantTokens,
  type HoldState,
  paidTokens,
  trialRemaining,
} from "./account.ts";
export {
  type AccountResult,
  applyAccountRecords,
  applyBatch,
  applyBatchInPlace,
  applyRecord,
  type BillingState,
  emptyState,
  nextTimedChange,
  type SequencedOutput,
  type SequencedRecord,
  type SequencedTopicOutput,
} from "./apply.ts";
export { BASIS_POINTS } from "./basis-points.ts";
export {
  type BillingConfig,
  type BillingConfigInput,
  billingConfigSchema,
  defaultBillingConfig,
  parseBillingConfig,
} from "./billing-config.ts";
export { type ChatBudget, chatBudgetOf, type TrialUsage, trialUsageOf } from "./budget-answers.ts";
export { budgetStateOf } from "./budget-state.ts";
export type { DedupeState } from "./dedupe.ts";
export { defaultPriceBook } from "./default-price-book.ts";
export { freshBudgetState } from "./fresh-account.ts";
export { earliestGrantChange } from "./grants.ts";
export {
  earliestHoldExpiry,
  heldTokens,
  holdAvailableTokens,
  holdExpiresBy,
  openHoldCount,
} from "./holds.ts";
export {
  creatorMismatchReason,
  creditRangeReason,
  MAX_TOKEN_COUNTER,
  timeSkewReason,
  usageRangeReason,
} from "./limits.ts";
export { nextPeriodBoundary } from "./periods.ts";
export { findPrice, priceUsage } from "./pricebook.ts";
export { divideRoundHalfUp } from "./rounding.ts";
export {
  type ChatOpening,
  emptyChat,
  type SessionMetrics,
  sessionMetricsOf,
  tallyUsage,
} from "./session-tally.ts";
export { billedPart, creatorShareBp, splitRevenue } from "./split.ts";
export { type AgentTokens, type TokenTotals, tokenTotals } from "./token-totals.ts";
export { workflowAveragesOf } from "./workflow-averages.ts";
