/**
 * agentmeter's producer SDK for agent runtimes. Importing it has no side effect: nothing connects,
 * reads the environment or starts a timer until `Agentmeter.connect()` is called.
 */
export type { Config } from "../pipeline/config.ts";
export type { CostThresholdAnalysis, WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
export { type BillingConfig, parseBillingConfig } from "../pipeline/core/index.ts";
export { AgentmeterError, type ErrorCode, isAgentmeterError } from "../pipeline/errors.ts";
export type {
  BudgetState,
  InputRecord,
  InputRecordJson,
  Level,
  SessionSummary,
} from "../schemas/index.ts";
export { accountKeyOf, microsToDecimalString } from "../schemas/index.ts";
export type { Staleness } from "./budget-view.ts";
export {
  type AccountIds,
  Agentmeter,
  type AgentmeterOptions,
  type BudgetStatus,
  type SentRecord,
  type TopUp,
} from "./client.ts";
export { MockLedger } from "./mock-ledger.ts";
export { type BatchingOptions, DEFAULT_BATCHING } from "./producer.ts";
export { uuidv7 } from "./record-id.ts";
export {
  type AccountData,
  type AgentUsageInput,
  type AppSessionIds,
  type PlatformSessionIds,
  PlatformTokenManager,
  type SessionResult,
  TokenManager,
  type TrackOptions,
  type TrialUsage,
  type UsageReceipt,
} from "./token-manager.ts";
export { prepareRecord, type RecordInput, RecordInvalidError } from "./validate.ts";
