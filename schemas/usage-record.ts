import { z } from "zod";
import { accountIdsShape, checkLevelIds, schemaVersionSchema } from "./common.ts";
import { modelNameSchema, nameSchema, opaqueIdSchema, userIdSchema } from "./ids.ts";
import { tokenCountSchema } from "./money.ts";
import { isoDateTimeSchema } from "./time.ts";

export const MAX_AGENTS_PER_RECORD = 64;

/** One agent's usage inside a usage record (the seed's `agent_usage` values plus its analytics). */
export const agentUsageSchema = z.strictObject({
  prompt_tokens: tokenCountSchema,
  completion_tokens: tokenCountSchema,
  /** Overrides the record's `model` for this agent. */
  model: modelNameSchema.optional(),
  response_time_ms: z.number().nonnegative().max(86_400_000).optional(),
  message_count: z.int().nonnegative().max(1_000_000).optional(),
});
export type AgentUsage = z.infer<typeof agentUsageSchema>;

export const CONNECTION_STATES = ["active", "paused", "completed", "disconnected", "failed"] as const;

/**
 * A usage record: what an agent runtime reports after LLM calls. Strict: the seed's computed fields
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
    agent_usage: z
      .record(nameSchema, agentUsageSchema)
      .refine((agents) => Object.keys(agents).length >= 1, "must name at least one agent")
      .refine(
        (agents) => Object.keys(agents).length <= MAX_AGENTS_PER_RECORD,
        `must name at most ${MAX_AGENTS_PER_RECORD} agents`,
      ),
    /** Event time: used for pricing (which price was effective) and for the dedupe horizon. */
    occurred_at: isoDateTimeSchema,
    started_at: isoDateTimeSchema.optional(),
    ended_at: isoDateTimeSchema.optional(),
    connection_state: z.enum(CONNECTION_STATES).optional(),
  })
  .superRefine(checkLevelIds);
export type UsageRecord = z.infer<typeof usageRecordSchema>;
