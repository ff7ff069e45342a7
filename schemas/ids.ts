import { z } from "zod";

/**
 * Id rules. Ids end up in MongoDB database names (`MozaiksApp_{enterprise_id}`), MongoDB field names
 * (dedupe and chat maps keyed by id) and ClickHouse values, so every id is a closed charset with no
 * `.`, `/`, `\`, `$`, space or NUL, and a length bound.
 *
 * - enterprise_id is lower-case only: MongoDB database names are case-insensitive for collision
 *   purposes, so `App_1` and `app_1` would collide; allowing one case removes the problem.
 *   `MozaiksApp_` (11 bytes) + 48 = 59 bytes, under MongoDB's 63-byte database name limit.
 * - user ids (mozaiks_user_id, platform_user_id, user_id) are case-sensitive and have no `:`, because
 *   they are joined with `:` into the account key.
 * - opaque ids (record_id, session_id, chat_id) may contain `:` (producers often namespace them).
 * - names (agent, workflow) are short identifiers; model names also allow `.` and `/` (`gpt-4.1`,
 *   `openai/gpt-4o`) because they are only ever values, never keys.
 *
 * Every id starts with a letter or digit, which also rules out `__proto__`-style keys.
 */
export const ENTERPRISE_ID_PATTERN = /^[a-z0-9][a-z0-9_-]{0,47}$/;
export const USER_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$/;
export const OPAQUE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_:-]{0,127}$/;
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
export const MODEL_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$/;
export const REASON_PATTERN = /^[a-z0-9][a-z0-9_]{0,63}$/;

export const enterpriseIdSchema = z
  .string()
  .regex(ENTERPRISE_ID_PATTERN, "must be 1-48 chars of a-z 0-9 _ - (lower-case, starting with a-z or 0-9)");
export const userIdSchema = z
  .string()
  .regex(USER_ID_PATTERN, "must be 1-128 chars of A-Z a-z 0-9 _ - (starting with a letter or digit)");
export const opaqueIdSchema = z
  .string()
  .regex(OPAQUE_ID_PATTERN, "must be 1-128 chars of A-Z a-z 0-9 _ - : (starting with a letter or digit)");
export const nameSchema = z
  .string()
  .regex(NAME_PATTERN, "must be 1-64 chars of A-Z a-z 0-9 _ - (starting with a letter or digit)");
export const modelNameSchema = z
  .string()
  .regex(MODEL_PATTERN, "must be 1-128 chars of A-Z a-z 0-9 _ . : / - (starting with a letter or digit)");
/** A machine-readable reason such as a pause reason: `trial_exhausted`, `user_requested`. */
export const reasonSchema = z
  .string()
  .regex(REASON_PATTERN, "must be 1-64 chars of a-z 0-9 _ (starting with a-z or 0-9)");
