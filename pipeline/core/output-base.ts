import type { InputRecord } from "../../schemas/index.ts";
import { accountKeyOf, SCHEMA_VERSION } from "../../schemas/index.ts";

/** Fields every output carries, taken from the record that caused it. */
export function outputBase(record: InputRecord) {
  return {
    schema_version: SCHEMA_VERSION,
    record_id: record.record_id,
    account_key: accountKeyOf(record),
    level: record.level,
    enterprise_id: record.enterprise_id,
    mozaiks_user_id: record.mozaiks_user_id,
    platform_user_id: record.platform_user_id ?? null,
    occurred_at: record.occurred_at,
  } as const;
}
export type OutputBase = ReturnType<typeof outputBase>;
