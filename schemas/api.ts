import { z } from "zod";
import { budgetStateSchema } from "./budget-state.ts";
import { levelSchema } from "./common.ts";
import { enterpriseIdSchema, userIdSchema } from "./ids.ts";

/**
 * The HTTP API's contracts (`agentmeter serve`, docs/api.md): every request and response is one of
 * these, and /openapi.json is generated from them. Money crosses JSON as decimal strings: `*_micros`
 * are exact integer micro-units, `*_usd` the same amount in currency units for display.
 */

/** Error codes of an API answer; the HTTP status says the class, the code says which. */
export const API_ERROR_CODES = [
  "UNAUTHENTICATED",
  "NOT_FOUND",
  "FORBIDDEN",
  "REQUEST_INVALID",
  "BODY_TOO_LARGE",
  "PRODUCE_FAILED",
  "SERVICE_UNAVAILABLE",
  "INTERNAL",
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export const apiErrorSchema = z.strictObject({
  error: z.strictObject({
    code: z.enum(API_ERROR_CODES),
    message: z.string(),
    /** Dotted paths of the fields at fault (`query.from`, `body.0.agent_usage`), when known. */
    fields: z.array(z.string()).optional(),
  }),
});
export type ApiError = z.infer<typeof apiErrorSchema>;

const microsString = z.string().regex(/^-?[0-9]+$/, "an integer amount of micro-units");
const decimalString = z.string().regex(/^-?[0-9]+(\.[0-9]{1,6})?$/, "a decimal amount");

/** An amount as exact micros and as a decimal for people. */
export const moneySchema = z.strictObject({ micros: microsString, usd: decimalString });
export type Money = z.infer<typeof moneySchema>;

// --- ingest ---------------------------------------------------------------------------------------

/**
 * The body of POST /v1/records: one input record (docs/records.md) or an array of them. Each element is
 * validated on its own by the route with the processor's schema, a non-object element included, so one
 * bad record does not refuse its neighbours; here only the outer shape and the batch size are checked.
 */
export function ingestBodySchema(maxRecords: number) {
  const record = z.record(z.string(), z.unknown());
  const batch = z
    .array(z.unknown())
    .min(1, "an array of records must hold at least one")
    .max(maxRecords, batchLimitMessage(maxRecords));
  // Neither branch matched: zod's own message would be "Invalid input", which names neither the shape
  // expected nor the batch limit.
  return z.union([record, batch], {
    error: (issue) =>
      Array.isArray(issue.input) && issue.input.length > maxRecords
        ? batchLimitMessage(maxRecords)
        : `must be one record (a JSON object) or an array of 1 to ${maxRecords} records`,
  });
}

function batchLimitMessage(maxRecords: number): string {
  return `at most ${maxRecords} records in one request (AGENTMETER_API_MAX_BATCH): split the batch`;
}

export const recordResultSchema = z.discriminatedUnion("status", [
  z.strictObject({
    index: z.int().nonnegative(),
    status: z.literal("accepted"),
    record_id: z.string(),
  }),
  z.strictObject({
    index: z.int().nonnegative(),
    status: z.literal("rejected"),
    record_id: z.string().nullable(),
    /** The processor's reason code: RECORD_INVALID, RECORD_TOO_LARGE, RECORD_UNAUTHORIZED, PRODUCE_FAILED. */
    code: z.string(),
    /** Dotted paths of the fields at fault within the record. */
    fields: z.array(z.string()),
    message: z.string(),
  }),
]);
export type RecordResult = z.infer<typeof recordResultSchema>;

export const ingestResponseSchema = z.strictObject({
  accepted: z.int().nonnegative(),
  rejected: z.int().nonnegative(),
  results: z.array(recordResultSchema),
});
export type IngestResponse = z.infer<typeof ingestResponseSchema>;

// --- accounts -------------------------------------------------------------------------------------

export const platformAccountParamsSchema = z.strictObject({ mozaiks_user_id: userIdSchema });
export const appAccountParamsSchema = z.strictObject({
  enterprise_id: enterpriseIdSchema,
  platform_user_id: userIdSchema,
});

export const accountResponseSchema = z.strictObject({
  account_key: z.string(),
  level: levelSchema,
  enterprise_id: z.string().nullable(),
  mozaiks_user_id: z.string(),
  platform_user_id: z.string().nullable(),
  tokens_used: z.int(),
  trial_used_tokens: z.int(),
  credited_tokens: z.int(),
  paid_used_tokens: z.int(),
  cost: moneySchema,
  billed: moneySchema,
  creator_share: moneySchema,
  platform_fee: moneySchema,
  paid_amount: moneySchema,
  in_overdraft: z.boolean(),
  /**
   * The account's budget state as agent runtimes see it: the budget-state topic's latest state for the
   * account (the SDK's BudgetView over the compacted topic) once the server's view has read the topic
   * to its end; until then, or for an account the topic has no state of, the state derived from the
   * MongoDB document (`budgetStateOf`, what the processor publishes from it). `budget_source` says which.
   */
  budget: budgetStateSchema,
  budget_source: z.enum(["state_topic", "mongodb"]),
  /** The server's view of the budget-state topic, for this account. */
  state_topic: z.strictObject({
    /** The view has read the topic up to the end offsets it saw when the server started. */
    caught_up: z.boolean(),
    /** The view holds a state for this account. */
    known: z.boolean(),
    /** ms since the processor published the state held; null when not known. */
    age_ms: z.int().nullable(),
    /** Whether the topic's state equals the one derived from the MongoDB document; null when not known. */
    agrees_with_mongodb: z.boolean().nullable(),
  }),
});
export type AccountResponse = z.infer<typeof accountResponseSchema>;

// --- app usage ------------------------------------------------------------------------------------

export const USAGE_WINDOWS = ["minute", "hour", "day", "month"] as const;
export const USAGE_GROUPS = ["agent", "model", "workflow", "end_user"] as const;
/** The most buckets one usage query may span, so a minute window over a year is refused, not run. */
export const MAX_USAGE_BUCKETS = 10_000;
/**
 * The most rows one usage answer may hold (buckets x groups): per end user, an app's users multiply the
 * buckets, and the answer is built in memory. More is refused, never cut short.
 */
export const MAX_USAGE_ROWS = 100_000;

const WINDOW_SECONDS: Record<(typeof USAGE_WINDOWS)[number], number> = {
  minute: 60,
  hour: 3_600,
  day: 86_400,
  month: 31 * 86_400,
};

const isoInstant = z.iso.datetime({
  offset: true,
  message: "an ISO 8601 date-time, e.g. 2026-11-01T00:00:00Z",
});

export const appParamsSchema = z.strictObject({ enterprise_id: enterpriseIdSchema });

export const usageQuerySchema = z
  .strictObject({
    from: isoInstant,
    to: isoInstant,
    window: z.enum(USAGE_WINDOWS).default("hour"),
    group_by: z.enum(USAGE_GROUPS).optional(),
    /** End users' usage of the app (billed to them, split 70/30), or its creator's own (platform). */
    level: levelSchema.default("app_usage"),
  })
  .superRefine((query, ctx) => {
    const span = (Date.parse(query.to) - Date.parse(query.from)) / 1000;
    if (!(span > 0)) ctx.addIssue({ code: "custom", path: ["to"], message: "must be after from" });
    else if (span / WINDOW_SECONDS[query.window] > MAX_USAGE_BUCKETS)
      ctx.addIssue({
        code: "custom",
        path: ["window"],
        message: `from..to spans more than ${MAX_USAGE_BUCKETS} ${query.window} buckets: use a larger window`,
      });
  });
export type UsageQuery = z.infer<typeof usageQuerySchema>;

/**
 * One bucket (and group). Per-agent and per-model rows come from the agent rollups, which hold tokens
 * and response times but no money (a record's cost is priced per record, not attributed per agent):
 * their money fields are null.
 */
export const usageRowSchema = z.strictObject({
  bucket: z.string(),
  group: z.string().nullable(),
  records: z.int(),
  tokens: z.int(),
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  cost: moneySchema.nullable(),
  billed: moneySchema.nullable(),
  creator_share: moneySchema.nullable(),
  platform_fee: moneySchema.nullable(),
  avg_response_ms: z.number().nullable(),
});
export type UsageRow = z.infer<typeof usageRowSchema>;

export const usageResponseSchema = z.strictObject({
  enterprise_id: z.string(),
  from: z.string(),
  to: z.string(),
  window: z.enum(USAGE_WINDOWS),
  group_by: z.enum(USAGE_GROUPS).nullable(),
  level: levelSchema,
  rows: z.array(usageRowSchema),
});
export type UsageResponse = z.infer<typeof usageResponseSchema>;

// --- top agents -----------------------------------------------------------------------------------

export const AGENT_ORDERS = ["cost", "billed", "tokens", "response_time"] as const;
/** Widest range one top-agents query may span: it reads raw events, not rollups. */
export const MAX_AGENT_RANGE_DAYS = 400;

export const topAgentsQuerySchema = z
  .strictObject({
    from: isoInstant,
    to: isoInstant,
    /** What to rank by: attributed cost (default), attributed billed amount, tokens, or average response time. */
    by: z.enum(AGENT_ORDERS).default("cost"),
    limit: z.coerce.number().int().min(1).max(100).default(10),
    level: levelSchema.default("app_usage"),
  })
  .superRefine((query, ctx) => {
    const span = Date.parse(query.to) - Date.parse(query.from);
    if (!(span > 0)) ctx.addIssue({ code: "custom", path: ["to"], message: "must be after from" });
    else if (span > MAX_AGENT_RANGE_DAYS * 86_400_000)
      ctx.addIssue({
        code: "custom",
        path: ["to"],
        message: `from..to spans more than ${MAX_AGENT_RANGE_DAYS} days`,
      });
  });
export type TopAgentsQuery = z.infer<typeof topAgentsQuerySchema>;

/**
 * One agent over the range, from the raw events (`usage_events FINAL`). A record is priced whole, so
 * its cost (and billed amount) is attributed to its agents in proportion to their prompt + completion
 * tokens, the remainder of the integer division going to the agent with the most tokens: the agents'
 * amounts sum exactly to the records' amounts.
 */
export const topAgentSchema = z.strictObject({
  agent: z.string(),
  /** Records the agent appears in. */
  records: z.int(),
  tokens: z.int(),
  prompt_tokens: z.int(),
  completion_tokens: z.int(),
  cost: moneySchema,
  billed: moneySchema,
  /** Records in which the agent reported a response time (the averages' weight). */
  timed_records: z.int(),
  avg_response_ms: z.number().nullable(),
  p95_response_ms: z.number().nullable(),
});
export type TopAgent = z.infer<typeof topAgentSchema>;

const topAgentsShape = {
  from: z.string(),
  to: z.string(),
  level: levelSchema,
  by: z.enum(AGENT_ORDERS),
  agents: z.array(topAgentSchema),
};
export const appTopAgentsResponseSchema = z.strictObject({
  enterprise_id: z.string(),
  ...topAgentsShape,
});
export const creatorTopAgentsResponseSchema = z.strictObject({
  mozaiks_user_id: z.string(),
  ...topAgentsShape,
});
export type AppTopAgentsResponse = z.infer<typeof appTopAgentsResponseSchema>;
export type CreatorTopAgentsResponse = z.infer<typeof creatorTopAgentsResponseSchema>;

// --- creators -------------------------------------------------------------------------------------

export const creatorParamsSchema = z.strictObject({ mozaiks_user_id: userIdSchema });

/**
 * Voids and refunds of billed usage (adjustments, dated when they happened) beside the gross figures of
 * the usage rows, and the net: gross minus reversed. Reversed creator share + reversed platform fee =
 * reversed billed, as for every split.
 */
const adjustedShape = {
  adjustments: z.int(),
  reversed_billed: moneySchema,
  reversed_creator_share: moneySchema,
  reversed_platform_fee: moneySchema,
  net_billed: moneySchema,
  net_creator_share: moneySchema,
  net_platform_fee: moneySchema,
};

export const creatorAppSchema = z.strictObject({
  enterprise_id: z.string(),
  records: z.int(),
  tokens: z.int(),
  billed: moneySchema,
  creator_share: moneySchema,
  platform_fee: moneySchema,
  ...adjustedShape,
});
export const creatorAppsResponseSchema = z.strictObject({
  mozaiks_user_id: z.string(),
  apps: z.array(creatorAppSchema),
});
export type CreatorAppsResponse = z.infer<typeof creatorAppsResponseSchema>;

export const pausedChatSchema = z.strictObject({
  chat_id: z.string(),
  platform_user_id: z.string().nullable(),
  session_id: z.string().nullable(),
  workflow_name: z.string().nullable(),
  pause_reason: z.string().nullable(),
  can_resume: z.boolean(),
  updated_at: z.string().nullable(),
});
export const pausedChatsResponseSchema = z.strictObject({
  enterprise_id: z.string(),
  chats: z.array(pausedChatSchema),
});
export type PausedChatsResponse = z.infer<typeof pausedChatsResponseSchema>;

// --- statements -----------------------------------------------------------------------------------

/**
 * The months a statement may be asked for: those within the lifetime the reconciliation reads
 * (reads/app-totals.ts, 1970-01-01 to 2299-12-31, inside ClickHouse's DateTime64 range), so every month's
 * [start, end) is an instant ClickHouse holds and an ISO string of four-digit years.
 */
export const STATEMENT_MONTHS = { first: "1970-01", last: "2299-11" } as const;

export const statementParamsSchema = z.strictObject({
  mozaiks_user_id: userIdSchema,
  month: z
    .string()
    .regex(/^[0-9]{4}-(0[1-9]|1[0-2])$/, { message: "a month as YYYY-MM", abort: true })
    // Fixed width, so the text orders as the months do.
    .refine(
      (month) => month >= STATEMENT_MONTHS.first && month <= STATEMENT_MONTHS.last,
      `a month from ${STATEMENT_MONTHS.first} to ${STATEMENT_MONTHS.last}`,
    ),
});
export const statementQuerySchema = z.strictObject({
  format: z.enum(["json", "csv"]).default("json"),
});

export const statementLineSchema = z.strictObject({
  enterprise_id: z.string(),
  records: z.int(),
  billed: moneySchema,
  creator_share: moneySchema,
  platform_fee: moneySchema,
  ...adjustedShape,
});

/**
 * Whether the two stores agree on the creator's apps. The MongoDB revenue ledgers are lifetime totals
 * (per app and input partition), so they are compared with ClickHouse's lifetime totals of the same
 * apps; the month's lines come from ClickHouse by event time.
 */
export const reconciliationSchema = z.strictObject({
  agrees: z.boolean(),
  clickhouse_billed: moneySchema,
  mongodb_billed: moneySchema,
  clickhouse_records: z.int(),
  mongodb_records: z.int(),
  /**
   * Apps where the two differ. A ledger is the whole app's (other creators' end users of an unpinned
   * app, records from before a pin), so a differing app's figures are in neither sum above.
   */
  differing_apps: z.array(z.string()),
});

export const statementResponseSchema = z.strictObject({
  mozaiks_user_id: z.string(),
  month: z.string(),
  /** The month in UTC by event time: [period_start, period_end). */
  period_start: z.string(),
  period_end: z.string(),
  lines: z.array(statementLineSchema),
  total: statementLineSchema.omit({ enterprise_id: true }),
  reconciliation: reconciliationSchema,
});
export type StatementResponse = z.infer<typeof statementResponseSchema>;
