import type { AccountKey, InputRecord } from "../../schemas/index.ts";
import { accountKeyOf, SCHEMA_VERSION } from "../../schemas/index.ts";

/**
 * Fields every output carries, taken from the record that caused it. `accountKey`: the record's, when
 * the caller has it already (building it again is a string concatenation and a fresh hash).
 */
export function outputBase(record: InputRecord, accountKey: AccountKey = accountKeyOf(record)) {
  return {
    schema_version: SCHEMA_VERSION,
    record_id: record.record_id,
    account_key: accountKey,
    level: record.level,
    enterprise_id: record.enterprise_id,
    mozaiks_user_id: record.mozaiks_user_id,
    platform_user_id: record.platform_user_id ?? null,
    occurred_at: record.occurred_at,
  } as const;
}
export type OutputBase = ReturnType<typeof outputBase>;
