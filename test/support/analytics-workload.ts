import type { InputRecordJson, UsageOutcome } from "../../schemas/index.ts";

/**
 * Two end users of app-000 (the workload's creator-000) around the analytics workload, so that
 * trial_conversion (docs/analytics.md) is checked on users it must leave out:
 * - `user-oct` uses up the trial on 31 October (and pays the overflow), then pays in November: a payer of
 *   November who did not use trial tokens in November;
 * - `user-try` uses trial tokens in November and never pays: tried, not converted.
 * `user-oct`'s agent answers twice in October, so its record's response time is a sum of two answers.
 */
export function conversionPrelude(): InputRecordJson[] {
  const app = { level: "app_usage" as const, enterprise_id: "app-000", mozaiks_user_id: "creator-000" };
  const oct = { ...app, platform_user_id: "user-oct" };
  const trier = { ...app, platform_user_id: "user-try" };
  const chat = (ids: typeof oct, id: string) => ({
    ...ids,
    session_id: `${id}-sess`,
    chat_id: `${id}-chat`,
    workflow_name: "chat",
  });
  const usage = (
    ids: typeof oct,
    id: string,
    record_id: string,
    occurred_at: string,
    agent: string,
    tokens: {
      prompt_tokens: number;
      completion_tokens: number;
      response_time_ms: number;
      message_count: number;
    },
  ): InputRecordJson => ({
    type: "usage",
    schema_version: 1,
    record_id,
    ...chat(ids, id),
    user_id: ids.platform_user_id,
    workflow_type: "chat_interaction",
    model: "gpt-4o",
    agent_usage: { [agent]: tokens },
    occurred_at,
  });
  return [
    {
      type: "credit",
      schema_version: 1,
      record_id: "an-oct-topup",
      kind: "top_up",
      ...oct,
      tokens: 20_000,
      amount_micros: 400_000,
      occurred_at: "2026-10-31T10:00:00.000Z",
    },
    {
      type: "session",
      schema_version: 1,
      record_id: "an-oct-start",
      event: "start",
      ...chat(oct, "an-oct"),
      occurred_at: "2026-10-31T10:00:00.000Z",
    },
    // 11,000 tokens: the 10,000 of the trial and 1,000 paid.
    usage(oct, "an-oct", "an-oct-1", "2026-10-31T10:05:00.000Z", "PlannerAgent", {
      prompt_tokens: 6_000,
      completion_tokens: 5_000,
      response_time_ms: 1_800,
      message_count: 2,
    }),
    // The trial is used up: paid only.
    usage(oct, "an-oct", "an-oct-2", "2026-11-01T09:30:00.000Z", "PlannerAgent", {
      prompt_tokens: 300,
      completion_tokens: 200,
      response_time_ms: 700,
      message_count: 1,
    }),
    {
      type: "session",
      schema_version: 1,
      record_id: "an-try-start",
      event: "start",
      ...chat(trier, "an-try"),
      occurred_at: "2026-11-01T09:31:00.000Z",
    },
    usage(trier, "an-try", "an-try-1", "2026-11-01T09:31:30.000Z", "WriterAgent", {
      prompt_tokens: 400,
      completion_tokens: 300,
      response_time_ms: 1_200,
      message_count: 1,
    }),
  ];
}

/**
 * Voids and refunds (half the billed amount) of some billed usage records, app and platform, to append
 * after the workload (each account's corrections follow its usage on its partition). Alternately void
 * and refund; two in four are dated 20 November, the others 1 December: a correction counts in the month
 * it happened, so the net queries see November usage less November's corrections, and a December of
 * corrections alone. All are within the default correction window (30 days) of their targets, and they
 * are returned in event-time order: a record more than the dedupe horizon (7 days) older than its
 * account's newest event is refused (RECORD_TOO_LATE).
 */
export function analyticsCorrections(usage: readonly UsageOutcome[]): InputRecordJson[] {
  const billed = usage.filter((outcome) => outcome.billed_micros > 1n);
  const picked = [
    ...billed.filter((outcome) => outcome.level === "app_usage").filter((_, index) => index % 60 === 0),
    ...billed.filter((outcome) => outcome.level === "platform").filter((_, index) => index % 40 === 0),
  ];
  const corrections = picked.map((outcome, index): InputRecordJson => {
    const ids =
      outcome.level === "app_usage"
        ? {
            level: "app_usage" as const,
            enterprise_id: outcome.enterprise_id,
            mozaiks_user_id: outcome.mozaiks_user_id,
            platform_user_id: outcome.platform_user_id!,
          }
        : {
            level: "platform" as const,
            enterprise_id: outcome.enterprise_id,
            mozaiks_user_id: outcome.mozaiks_user_id,
          };
    const day = index % 4 < 2 ? "2026-11-20T12:00:00.000Z" : "2026-12-01T06:00:00.000Z";
    const occurred_at = new Date(Date.parse(day) + index * 1_000).toISOString();
    return index % 2 === 0
      ? {
          type: "void",
          schema_version: 1,
          record_id: `an-void-${outcome.record_id}`,
          ...ids,
          target_record_id: outcome.record_id,
          occurred_at,
        }
      : {
          type: "refund",
          schema_version: 1,
          record_id: `an-refund-${outcome.record_id}`,
          ...ids,
          target_record_id: outcome.record_id,
          amount_micros: String(outcome.billed_micros / 2n),
          occurred_at,
        };
  });
  return corrections.sort((a, b) =>
    a.occurred_at < b.occurred_at ? -1 : a.occurred_at > b.occurred_at ? 1 : 0,
  );
}
