export {
  type AccountState,
  type AgentTotals,
  availableTokens,
  balanceSnapshot,
  type ChatState,
  canContinue,
  paidTokens,
  trialRemaining,
} from "./account.ts";
export {
  type AccountResult,
  applyAccountRecords,
  applyBatch,
  applyRecord,
  type BillingState,
  emptyState,
  type SequencedOutput,
  type SequencedRecord,
} from "./apply.ts";
export { budgetStateOf } from "./budget-state.ts";
export {
  type BillingConfig,
  type BillingConfigInput,
  billingConfigSchema,
  defaultBillingConfig,
  parseBillingConfig,
} from "./config.ts";
export type { DedupeState } from "./dedupe.ts";
export { defaultPriceBook } from "./default-price-book.ts";
export { findPrice, priceUsage } from "./pricebook.ts";
export { divideRoundHalfUp } from "./rounding.ts";
export { billedPart, creatorShareBp, splitRevenue } from "./split.ts";
