import { isAgentmeterError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type ProcessorMetrics, storeOfError } from "../ops/metrics.ts";
import { withBackoff } from "./backoff.ts";
import { isDeterministicStoreError } from "./store-errors.ts";

const FIRST_DELAY_MS = 100;
const MAX_DELAY_MS = 5_000;

export interface RetryScope {
  /** False once the partition may belong to another member: retrying would write for it. */
  stillOurs: () => boolean;
  /** True while the processor stops: batches give up, a write-behind cycle keeps trying. */
  stopping: () => boolean;
  evenWhileStopping?: boolean;
}

/**
 * Retries a failing store with capped backoff for as long as the work is still ours (the batch lease
 * heartbeats meanwhile). Lost ownership and refusals a retry cannot cure are thrown at once.
 */
export function retryStores<T>(
  action: () => Promise<T>,
  scope: RetryScope,
  observers: { metrics: ProcessorMetrics; logger: Logger },
): Promise<T> {
  return withBackoff(
    action,
    { firstDelayMs: FIRST_DELAY_MS, maxDelayMs: MAX_DELAY_MS },
    (error, attempt, delayMs) => {
      // Lost ownership is another member's turn, not a store failing.
      if (isAgentmeterError(error, "OWNERSHIP_LOST")) throw error;
      const store = storeOfError(error);
      // Every failed call is an error, retried or not (a refusal for good included); the retries apart.
      observers.metrics.storeError(store);
      if (
        isDeterministicStoreError(error) ||
        (scope.stopping() && scope.evenWhileStopping !== true) ||
        !scope.stillOurs()
      )
        throw error;
      observers.metrics.storeRetry(store);
      observers.logger.warn(
        { err: error, attempt, retryInMs: delayMs },
        "store failed; retrying (consumption paused)",
      );
      return delayMs;
    },
  );
}
