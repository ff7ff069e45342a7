import { AgentmeterError, isAgentmeterError } from "../pipeline/errors.ts";
import type { HoldDecision, HoldDenialReason, InputRecord } from "../schemas/index.ts";
import type { AccountIds } from "./session-client.ts";
import type { RecordInput } from "./validate.ts";

/** How long a hold lasts when the caller names no expiry: an agent turn with a few LLM calls. */
export const DEFAULT_HOLD_TTL_MS = 5 * 60_000;
/** How long reserve waits for the decision before HOLD_TIMEOUT. */
export const DEFAULT_HOLD_TIMEOUT_MS = 10_000;

/** A reservation of tokens for one agent turn (docs/holds.md). */
export interface HoldRequest extends AccountIds {
  chat_id: string;
  /** The turn's estimate, all models together: budgets count tokens whatever the model. */
  tokens: number;
  /**
   * Default a fresh UUIDv7. A retry of a reserve that timed out should pass the same hold id (with a
   * new record id): an open hold answers with its grant again, nothing more is held.
   */
  hold_id?: string;
  /** When the hold lapses if neither settled nor released; default `ttl_ms` after occurred_at. */
  expires_at?: string;
  /** Default DEFAULT_HOLD_TTL_MS. */
  ttl_ms?: number;
  record_id?: string;
  /** Event time; default now. */
  occurred_at?: string;
  /** How long to wait for the decision; default DEFAULT_HOLD_TIMEOUT_MS. */
  timeout_ms?: number;
}

/** The answer to a reserve. */
export interface HoldGrant {
  granted: boolean;
  hold_id: string;
  /**
   * Tokens a new hold could still get after this decision (allowance left + paid left - held). Below
   * zero when usage metered without a hold (never refused) overdrew the account; a hold is granted
   * only once it covers the hold's tokens. A denial's `detail` words a negative figure as 0 available,
   * with the figures the denial was decided on (tokens left, held, grant tokens lapsing before the hold).
   */
  available: number;
  /** Tokens the account's open holds reserve after this decision. */
  held_tokens: number;
  /** Why not granted; null when granted. */
  reason: HoldDenialReason | null;
  detail: string | null;
  expires_at: string;
  /** The core's decision as the processor publishes it. */
  decision: HoldDecision;
}

export interface HoldRelease extends AccountIds {
  hold_id: string;
  record_id?: string;
  occurred_at?: string;
}

type UsageInput = Extract<RecordInput, { type: "usage" }>;
/** The usage record that settles a hold: a usage record without `type` and `hold_id` (filled in). */
export type SettleUsage = Omit<UsageInput, "type" | "hold_id">;

/** The hold record a request stands for (validated when prepared). */
export function holdRecordInput(request: HoldRequest, holdId: string): RecordInput {
  const {
    tokens,
    chat_id,
    expires_at,
    ttl_ms,
    record_id,
    occurred_at,
    timeout_ms: _t,
    hold_id: _h,
    ...ids
  } = request;
  const at = occurred_at ?? new Date().toISOString();
  return {
    type: "hold",
    ...ids,
    chat_id,
    hold_id: holdId,
    tokens,
    expires_at: expires_at ?? new Date(Date.parse(at) + (ttl_ms ?? DEFAULT_HOLD_TTL_MS)).toISOString(),
    occurred_at: at,
    ...(record_id === undefined ? {} : { record_id }),
  };
}

export function grantOf(decision: HoldDecision): HoldGrant {
  return {
    granted: decision.granted,
    hold_id: decision.hold_id,
    available: decision.available_tokens,
    held_tokens: decision.held_tokens,
    reason: decision.reason,
    detail: decision.detail,
    expires_at: decision.expires_at,
    decision,
  };
}

/** What withHold throws when the hold is not granted: the turn did not run. */
export function holdDenied(grant: HoldGrant): AgentmeterError {
  return new AgentmeterError(
    "HOLD_DENIED",
    `hold ${grant.hold_id} not granted: ${grant.reason}${grant.detail === null ? "" : ` (${grant.detail})`}`,
    {
      details: {
        hold_id: grant.hold_id,
        reason: grant.reason,
        available: grant.available,
        held_tokens: grant.held_tokens,
      },
    },
  );
}

/** Waits before each resend of a settle whose send failed (PRODUCE_FAILED): three more tries in 3.5 s. */
export const SETTLE_RESEND_DELAYS_MS = [500, 1_000, 2_000] as const;

/** The record a failed send names (PRODUCE_FAILED's details.record), if the error is one. */
function unsentRecordOf(error: unknown): InputRecord | undefined {
  if (!isAgentmeterError(error, "PRODUCE_FAILED")) return undefined;
  return (error.details as { record?: InputRecord } | undefined)?.record;
}

/**
 * reserve, run the turn, settle with what it really used. When the turn throws, the hold is released
 * and the error rethrown (a release that fails leaves the hold to expire at its expires_at). When the
 * settle is refused before it is sent (an invalid usage record), likewise. When its send fails
 * (PRODUCE_FAILED: the record may or may not be on the topic), the turn has spent its tokens: the same
 * record is sent again (`resend`, same record_id, so the billing core counts it once however many
 * copies land) after each of SETTLE_RESEND_DELAYS_MS, and the hold is never released, which would give
 * back tokens the turn used. If every resend fails, the last PRODUCE_FAILED is thrown, naming the
 * record for the caller to send again; the hold then expires at its expires_at if no copy landed.
 */
export async function runHeld<U, R>(
  reserve: () => Promise<HoldGrant>,
  turn: (hold: HoldGrant) => Promise<U>,
  settle: (hold: HoldGrant, usage: U) => Promise<R>,
  release: (hold: HoldGrant) => Promise<unknown>,
  resend: (record: InputRecord) => Promise<R>,
  wait: (ms: number) => Promise<void> = (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
): Promise<{ hold: HoldGrant; settled: R }> {
  const hold = await reserve();
  if (!hold.granted) throw holdDenied(hold);
  let usage: U;
  try {
    usage = await turn(hold);
  } catch (error) {
    await release(hold).catch(() => undefined);
    throw error;
  }
  try {
    return { hold, settled: await settle(hold, usage) };
  } catch (error) {
    const record = unsentRecordOf(error);
    if (record === undefined) {
      await release(hold).catch(() => undefined);
      throw error;
    }
    let last = error;
    for (const delay of SETTLE_RESEND_DELAYS_MS) {
      await wait(delay);
      try {
        return { hold, settled: await resend(record) };
      } catch (again) {
        if (unsentRecordOf(again) === undefined) throw again;
        last = again;
      }
    }
    throw last;
  }
}
