/**
 * agentmeter's producer SDK for agent runtimes. Importing it has no side effect: nothing connects,
 * reads the environment or starts a timer until `Agentmeter.connect()` is called, and it loads no
 * database driver (reads of the stores are `agentmeter/admin`, sdk/admin.ts).
 */
export type { Config } from "../pipeline/config.ts";
export type { CostThresholdAnalysis, WorkflowAverages } from "../pipeline/core/cost-thresholds.ts";
export { type BillingConfig, parseBillingConfig } from "../pipeline/core/index.ts";
export { AgentmeterError, type ErrorCode, isAgentmeterError } from "../pipeline/errors.ts";
export type {
  BudgetState,
  HoldDecision,
  HoldDenialReason,
  InputRecord,
  InputRecordJson,
  Level,
  SessionSummary,
} from "../schemas/index.ts";
export { accountKeyOf, microsToDecimalString } from "../schemas/index.ts";
export type { BudgetReading, MeterBackend } from "./backend.ts";
export type { Staleness } from "./budget-view.ts";
export { Agentmeter, type AgentmeterOptions } from "./client.ts";
export {
  DEFAULT_HOLD_TIMEOUT_MS,
  DEFAULT_HOLD_TTL_MS,
  type HoldGrant,
  type HoldRelease,
  type HoldRequest,
  type SettleUsage,
} from "./holds.ts";
export { MockLedger } from "./mock-ledger.ts";
export { type BatchingOptions, DEFAULT_BATCHING } from "./producer.ts";
export { uuidv7 } from "./record-id.ts";
export type {
  AccountIds,
  BudgetSource,
  BudgetStatus,
  Correction,
  Refund,
  SentRecord,
  SessionClient,
  TopUp,
} from "./session-client.ts";
export {
  type AccountData,
  type AgentUsageInput,
  type AppSessionIds,
  type PlatformSessionIds,
  PlatformTokenManager,
  type ReserveOptions,
  type SessionResult,
  TokenManager,
  type TrackOptions,
  type TrialUsage,
  type UsageReceipt,
} from "./token-manager.ts";
export {
  type PreparedRecord,
  prepareRecord,
  type RecordInput,
  RecordInvalidError,
} from "./validate.ts";
