import { z } from "zod";
import { accountIdsShape, checkLevelIds, schemaVersionSchema } from "./common.ts";
import { modelNameSchema, nameSchema, opaqueIdSchema, userIdSchema } from "./ids.ts";
import { tokenCountSchema } from "./money.ts";
import { isoDateTimeSchema } from "./time.ts";

export const MAX_AGENTS_PER_RECORD = 64;
/** Bounds of one agent's analytics figures (a day of response time, a million messages). */
export const MAX_AGENT_RESPONSE_TIME_MS = 86_400_000;
export const MAX_AGENT_MESSAGE_COUNT = 1_000_000;

/**
 * The token classes an agent may report beside prompt and completion, each priced apart. Every list of
 * them (ClickHouse columns, migrations) is this one.
 */
export const TOKEN_CLASSES = ["cached_prompt_tokens", "reasoning_tokens", "audio_tokens"] as const;

/** One agent's usage inside a usage record: its token counts, plus the response time and message count the per-agent analytics sum. */
export const agentUsageSchema = z.strictObject({
  prompt_tokens: tokenCountSchema,
  completion_tokens: tokenCountSchema,
  /**
   * Token classes priced apart, each counted BESIDE prompt and completion (disjoint, never a part of
   * them): a provider reporting cached tokens inside its prompt count must subtract them. Absent = 0.
   */
  cached_prompt_tokens: tokenCountSchema.optional(),
  reasoning_tokens: tokenCountSchema.optional(),
  audio_tokens: tokenCountSchema.optional(),
  /** Overrides the record's `model` for this agent. */
  model: modelNameSchema.optional(),
  response_time_ms: z.number().nonnegative().max(MAX_AGENT_RESPONSE_TIME_MS).optional(),
  message_count: z.int().nonnegative().max(MAX_AGENT_MESSAGE_COUNT).optional(),
});
export type AgentUsage = z.infer<typeof agentUsageSchema>;

/**
 * Names that are properties of every JavaScript object. JSON.parse keeps `__proto__` as a key but a
 * record schema drops it silently (and `constructor` / `prototype` invite prototype confusion in
 * maps keyed by agent name), so a record naming one is refused, naming the field.
 */
export const RESERVED_AGENT_NAMES: ReadonlySet<string> = new Set(["__proto__", "constructor", "prototype"]);

function checkReservedAgentNames(value: unknown, ctx: z.RefinementCtx): void {
  if (typeof value !== "object" || value === null) return;
  for (const name of Object.keys(value)) {
    if (RESERVED_AGENT_NAMES.has(name)) {
      ctx.addIssue({
        code: "custom",
        path: [name],
        message: `agent name ${name} is reserved (${[...RESERVED_AGENT_NAMES].join(", ")}): rename the agent`,
      });
    }
  }
}

const agentUsageRecordSchema = z
  .record(nameSchema, agentUsageSchema)
  .refine((agents) => Object.keys(agents).length >= 1, "must name at least one agent")
  .refine(
    (agents) => Object.keys(agents).length <= MAX_AGENTS_PER_RECORD,
    `must name at most ${MAX_AGENTS_PER_RECORD} agents`,
  );

/**
 * agent_usage: the reserved names are checked on the raw input (zod strips `__proto__` before any
 * refinement could see it), then the record schema applies. The cast keeps the record's input type
 * for producers (the runtime schema is a pipe from unknown).
 */
export const agentUsageMapSchema = z
  .unknown()
  .superRefine(checkReservedAgentNames)
  .pipe(agentUsageRecordSchema) as unknown as typeof agentUsageRecordSchema;

export const CONNECTION_STATES = ["active", "paused", "completed", "disconnected", "failed"] as const;

/**
 * A usage record: what an agent runtime reports after LLM calls. Strict: fields the processor computes
 * (tokens_used, cost, billing_target, revenue_share, mozaiks_fee, trial_tokens_used, is_free_trial,
 * can_resume, pause_reason, balances) are rejected, never trusted, so a producer that sends them
 * learns at once instead of believing they count.
 */
export const usageRecordSchema = z
  .strictObject({
    type: z.literal("usage"),
    schema_version: schemaVersionSchema,
    record_id: opaqueIdSchema,
    ...accountIdsShape,
    /** The end user inside the workflow, if different from the account's user (seed: `user_id`). */
    user_id: userIdSchema.optional(),
    workflow_type: nameSchema,
    workflow_name: nameSchema,
    session_id: opaqueIdSchema,
    chat_id: opaqueIdSchema,
    /** Default model for agents that do not name their own. */
    model: modelNameSchema.optional(),
    agent_usage: agentUsageMapSchema,
    /** Event time: used for pricing (which price was effective) and for the dedupe horizon. */
    occurred_at: isoDateTimeSchema,
    started_at: isoDateTimeSchema.optional(),
    ended_at: isoDateTimeSchema.optional(),
    connection_state: z.enum(CONNECTION_STATES).optional(),
    /**
     * The open hold this usage settles: the usage is billed as any usage is (never the hold's
     * estimate) and whatever the hold reserved beyond it is released.
     */
    hold_id: opaqueIdSchema.optional(),
  })
  .superRefine(checkLevelIds);
export type UsageRecord = z.infer<typeof usageRecordSchema>;
