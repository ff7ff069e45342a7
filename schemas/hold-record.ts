import { z } from "zod";
import { accountIdsShape, checkLevelIds, schemaVersionSchema } from "./common.ts";
import { opaqueIdSchema } from "./ids.ts";
import { MAX_TOKENS_PER_FIELD } from "./money.ts";
import { epochMs, isoDateTimeSchema } from "./time.ts";

const HOLD_TOKENS_RULE = `must be an integer from 1 to ${MAX_TOKENS_PER_FIELD}`;

/**
 * A hold's size. Budgets are counted in tokens whatever the model, so an estimate is one number of
 * tokens: a caller with per-model estimates adds them up. Zero is refused: a hold of nothing cannot
 * protect anything and would only take a slot of the account's open holds.
 */
export const holdTokensSchema = z
  .number()
  .max(MAX_TOKENS_PER_FIELD, { error: HOLD_TOKENS_RULE, abort: true })
  .int({ error: HOLD_TOKENS_RULE, abort: true })
  .min(1, HOLD_TOKENS_RULE);

/**
 * A reservation of tokens for one agent turn, decided by the account's one writer: granted when the
 * account's available tokens, minus those already held, cover it. It ends exactly once: settled by the
 * usage record naming its `hold_id`, released, or expired once the account's event time passes
 * `expires_at`.
 */
export const holdRecordSchema = z
  .strictObject({
    type: z.literal("hold"),
    schema_version: schemaVersionSchema,
    record_id: opaqueIdSchema,
    ...accountIdsShape,
    chat_id: opaqueIdSchema,
    /** The hold's identity within its account: what the decision, the settle and the release name. */
    hold_id: opaqueIdSchema,
    tokens: holdTokensSchema,
    expires_at: isoDateTimeSchema,
    occurred_at: isoDateTimeSchema,
  })
  .superRefine(checkLevelIds)
  .superRefine((record, ctx) => {
    // A hold born expired could never be used: refused with the record instead of denied later.
    if (epochMs(record.expires_at) <= epochMs(record.occurred_at)) {
      ctx.addIssue({ code: "custom", path: ["expires_at"], message: "must be after occurred_at" });
    }
  });
export type HoldRecord = z.infer<typeof holdRecordSchema>;

/** Gives an open hold back unused (the turn failed or was cancelled): its tokens are spendable again. */
export const releaseRecordSchema = z
  .strictObject({
    type: z.literal("release"),
    schema_version: schemaVersionSchema,
    record_id: opaqueIdSchema,
    ...accountIdsShape,
    hold_id: opaqueIdSchema,
    occurred_at: isoDateTimeSchema,
  })
  .superRefine(checkLevelIds);
export type ReleaseRecord = z.infer<typeof releaseRecordSchema>;
