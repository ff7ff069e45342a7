import { setTimeout as sleep } from "node:timers/promises";

export interface Backoff {
  firstDelayMs: number;
  maxDelayMs: number;
  /** How a wait is made; a test passes a fake clock's. */
  pause?: (ms: number) => Promise<unknown>;
}

/**
 * Runs `action` until it succeeds, waiting a doubling delay (capped) between attempts. After each
 * failure `beforeRetry` decides: it throws to give up, or returns how long to wait (the backoff's delay,
 * or less, e.g. up to a deadline), after logging or counting what it wants to.
 */
export async function withBackoff<T>(
  action: () => Promise<T>,
  backoff: Backoff,
  beforeRetry: (error: unknown, attempt: number, delayMs: number) => number,
): Promise<T> {
  const pause = backoff.pause ?? sleep;
  let delay = backoff.firstDelayMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await action();
    } catch (error) {
      await pause(beforeRetry(error, attempt, delay));
      delay = Math.min(delay * 2, backoff.maxDelayMs);
    }
  }
}
