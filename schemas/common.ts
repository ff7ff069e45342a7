import { z } from "zod";
import { enterpriseIdSchema, userIdSchema } from "./ids.ts";

export const SCHEMA_VERSION = 1;
/** Absent means version 1; any other version is rejected until this code knows it. */
export const schemaVersionSchema = z.literal(SCHEMA_VERSION).default(SCHEMA_VERSION);

export const LEVELS = ["platform", "app_usage"] as const;
export const levelSchema = z.enum(LEVELS);
export type Level = z.infer<typeof levelSchema>;

/**
 * The account ids every input record carries. `platform_user_id` is required for `app_usage` and
 * must be absent for `platform` (a platform record is the creator's own usage).
 */
export const accountIdsShape = {
  level: levelSchema,
  enterprise_id: enterpriseIdSchema,
  mozaiks_user_id: userIdSchema,
  platform_user_id: userIdSchema.optional(),
};

type AccountIds = {
  level: Level;
  platform_user_id?: string | undefined;
};

/** Issue for the level/platform_user_id rule; used by every input schema's refinement. */
export function checkLevelIds(record: AccountIds, ctx: z.RefinementCtx): void {
  if (record.level === "app_usage" && record.platform_user_id === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["platform_user_id"],
      message: "is required when level is app_usage",
    });
  }
  if (record.level === "platform" && record.platform_user_id !== undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["platform_user_id"],
      message: "must be absent when level is platform",
    });
  }
}
