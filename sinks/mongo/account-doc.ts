import { z } from "zod";
import { formatIssues } from "../../schemas/decode.ts";

/**
 * What the processor needs of a stored account document before it trusts it. The databases may already
 * hold documents agentmeter did not write (or a person edited one by hand): such a document must
 * get a clear error naming it, never a TypeError deep in planning that crash-loops the group.
 * Loose on purpose: fields added by later versions pass, missing or mistyped ones the rules read do not.
 */
const count = z.number().int().nonnegative();
const micros = z.bigint();
const storedAccountSchema = z.looseObject({
  state_version: z.literal(1),
  account_key: z.string(),
  level: z.enum(["platform", "app_usage"]),
  mozaiks_user_id: z.string(),
  allowance_tokens: count,
  trial_used_tokens: count,
  credited_tokens: count,
  paid_used_tokens: count,
  tokens_used: count,
  cost_micros: micros,
  billed_micros: micros,
  creator_share_micros: micros,
  platform_fee_micros: micros,
  paid_amount_micros: micros,
  thresholds_raised_bp: z.array(z.number().int()),
  in_overdraft: z.boolean(),
  chats: z.record(
    z.string(),
    z.looseObject({ paused: z.boolean(), agents: z.record(z.string(), z.unknown()) }),
  ),
  // account-codec.ts read the ids (from their pack, or an older map of fields) and checked each one.
  dedupe: z.looseObject({ seen: z.instanceof(Map), count: count }),
});

/** Why a loaded account document cannot be used, or undefined when it can. */
export function accountDocProblem(body: unknown, expectedKey: string): string | undefined {
  const parsed = storedAccountSchema.safeParse(body);
  if (!parsed.success) return formatIssues(parsed.error.issues);
  if (parsed.data.account_key !== expectedKey)
    return `account_key is ${JSON.stringify(parsed.data.account_key)}, expected ${JSON.stringify(expectedKey)}`;
  return undefined;
}
