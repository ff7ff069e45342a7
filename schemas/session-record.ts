import { z } from "zod";
import { accountIdsShape, checkLevelIds, schemaVersionSchema } from "./common.ts";
import { nameSchema, opaqueIdSchema, reasonSchema } from "./ids.ts";
import { isoDateTimeSchema } from "./time.ts";

export const SESSION_EVENTS = ["start", "pause", "resume", "finalize"] as const;

/** A chat's lifecycle from the agent runtime: it starts, pauses (by the user, or when the budget runs out), resumes and is finalized. */
export const sessionRecordSchema = z
  .strictObject({
    type: z.literal("session"),
    schema_version: schemaVersionSchema,
    record_id: opaqueIdSchema,
    event: z.enum(SESSION_EVENTS),
    ...accountIdsShape,
    session_id: opaqueIdSchema,
    chat_id: opaqueIdSchema,
    workflow_name: nameSchema,
    occurred_at: isoDateTimeSchema,
    /** Only for `pause`; defaults to `user_requested`. */
    pause_reason: reasonSchema.optional(),
  })
  .superRefine(checkLevelIds)
  .superRefine((record, ctx) => {
    if (record.pause_reason !== undefined && record.event !== "pause") {
      ctx.addIssue({
        code: "custom",
        path: ["pause_reason"],
        message: "is only allowed when event is pause",
      });
    }
  });
export type SessionRecord = z.infer<typeof sessionRecordSchema>;
