import {
  type BillingConfig,
  type BillingConfigInput,
  parseBillingConfig,
} from "../../pipeline/core/index.ts";
import {
  type CreditRecord,
  creditRecordSchema,
  type InputRecordJson,
  type RefundRecord,
  refundRecordSchema,
  type SessionRecord,
  sessionRecordSchema,
  type UsageRecord,
  usageRecordSchema,
  type VoidRecord,
  voidRecordSchema,
} from "../../schemas/index.ts";

type Json<T extends InputRecordJson["type"]> = Partial<Extract<InputRecordJson, { type: T }>>;

export const APP_IDS = {
  level: "app_usage",
  enterprise_id: "app_456",
  mozaiks_user_id: "user_123",
  platform_user_id: "enduser_789",
} as const;
export const PLATFORM_IDS = {
  level: "platform",
  enterprise_id: "app_456",
  mozaiks_user_id: "user_123",
  platform_user_id: undefined,
} as const;

/** A valid usage record (parsed by the real schema) with the given fields replaced. */
export function usage(fields: Json<"usage"> = {}): UsageRecord {
  return usageRecordSchema.parse({
    type: "usage",
    record_id: "u-1",
    ...APP_IDS,
    workflow_type: "chat_interaction",
    workflow_name: "default",
    session_id: "sess-1",
    chat_id: "chat-1",
    agent_usage: { Agent: { prompt_tokens: 100, completion_tokens: 100 } },
    occurred_at: "2025-07-28T10:00:00Z",
    ...fields,
  });
}

export function credit(fields: Json<"credit"> = {}): CreditRecord {
  return creditRecordSchema.parse({
    type: "credit",
    record_id: "c-1",
    kind: "top_up",
    ...APP_IDS,
    tokens: 1000,
    occurred_at: "2025-07-28T10:00:00Z",
    ...fields,
  });
}

export function session(fields: Json<"session"> = {}): SessionRecord {
  return sessionRecordSchema.parse({
    type: "session",
    record_id: "s-1",
    event: "start",
    ...APP_IDS,
    session_id: "sess-1",
    chat_id: "chat-1",
    workflow_name: "default",
    occurred_at: "2025-07-28T10:00:00Z",
    ...fields,
  });
}

/** Tokens on one agent of the flat-priced `default` model ($30 per million tokens). */
export function tokens(prompt: number, completion = 0) {
  return { agent_usage: { Agent: { prompt_tokens: prompt, completion_tokens: completion } } };
}

export function config(input: BillingConfigInput = {}): BillingConfig {
  return parseBillingConfig(input);
}

/**
 * A price book of one entry for every model at 1e12 micros (a million currency units) a million tokens:
 * the highest price the schema takes, for records whose money reaches int64.
 */
export const HUGE_PRICE_BOOK = {
  entries: [
    {
      price_id: "huge",
      model: "default",
      effective_from: "2024-01-01T00:00:00Z",
      prompt_micros_per_mtok: 1_000_000_000_000,
      completion_micros_per_mtok: 1_000_000_000_000,
    },
  ],
};

/** Minutes after a fixed day, as an ISO time: keeps event times readable in tests. */
export function at(minutes: number): string {
  return new Date(Date.parse("2025-07-28T00:00:00Z") + minutes * 60_000).toISOString();
}

import {
  type AccountState,
  applyBatch,
  type BillingState,
  defaultBillingConfig,
  emptyState,
} from "../../pipeline/core/index.ts";
import type { InputRecord, Output } from "../../schemas/index.ts";

/** Applies records to an empty state in one batch. */
export function run(records: readonly InputRecord[], cfg: BillingConfig = defaultBillingConfig) {
  return applyBatch(
    emptyState(),
    records.map((record) => ({ record })),
    cfg,
  );
}

export function accountOf(state: BillingState, key = "app:app_456:enduser_789"): AccountState {
  const account = state.accounts[key];
  if (account === undefined) throw new Error(`no account ${key}`);
  return account;
}

export function ofKind<K extends Output["kind"]>(
  outputs: readonly Output[],
  kind: K,
): Extract<Output, { kind: K }>[] {
  return outputs.filter((output): output is Extract<Output, { kind: K }> => output.kind === kind);
}

export function budgetEvents(outputs: readonly Output[]): string[] {
  return ofKind(outputs, "budget_event").map((event) => event.event);
}

/** A void of `target` (an app end user's usage record), an hour into the test day. */
export function voidOf(target: string, fields: Partial<VoidRecord> = {}): VoidRecord {
  return voidRecordSchema.parse({
    type: "void",
    record_id: `v-${target}`,
    ...APP_IDS,
    target_record_id: target,
    occurred_at: at(60),
    ...fields,
  });
}

export function refundOf(
  target: string,
  amount: bigint | number,
  fields: Partial<RefundRecord> = {},
): RefundRecord {
  return refundRecordSchema.parse({
    type: "refund",
    record_id: `r-${target}-${amount}`,
    ...APP_IDS,
    target_record_id: target,
    amount_micros: String(amount),
    occurred_at: at(60),
    ...fields,
  });
}
