import { applyBatch, type BillingConfig } from "../../pipeline/core/index.ts";
import { type InputRecordJson, inputRecordSchema, type UsageOutcome } from "../../schemas/index.ts";

/**
 * Voids of every 7th billed app record and half refunds of every 5th other one, dated after the workload: the
 * records a test appends to a workload to exercise corrections in every store.
 */
export function correctionsOf(
  records: readonly InputRecordJson[],
  billing: BillingConfig,
): InputRecordJson[] {
  const { outputs } = applyBatch(
    { accounts: {} },
    records.map((record, seq) => ({ record: inputRecordSchema.parse(record), seq })),
    billing,
  );
  const billed = outputs.filter(
    (o): o is UsageOutcome & { seq?: number } =>
      o.kind === "usage_outcome" && o.level === "app_usage" && o.billed_micros > 1n,
  );
  const last = Date.parse(records[records.length - 1]!.occurred_at);
  const corrections: InputRecordJson[] = [];
  billed.forEach((outcome, index) => {
    const ids = {
      level: "app_usage" as const,
      enterprise_id: outcome.enterprise_id,
      mozaiks_user_id: outcome.mozaiks_user_id,
      platform_user_id: outcome.platform_user_id!,
    };
    const occurred_at = new Date(last + 1_000 + index).toISOString();
    if (index % 7 === 0)
      corrections.push({
        type: "void",
        record_id: `void-${outcome.record_id}`,
        ...ids,
        target_record_id: outcome.record_id,
        occurred_at,
      });
    else if (index % 5 === 0)
      corrections.push({
        type: "refund",
        record_id: `refund-${outcome.record_id}`,
        ...ids,
        target_record_id: outcome.record_id,
        amount_micros: String(outcome.billed_micros / 2n),
        occurred_at,
      });
  });
  return corrections;
}
