import { AgentmeterError, isAgentmeterError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { withBackoff } from "./backoff.ts";
import { isDeterministicStoreError } from "./store-errors.ts";

const FIRST_DELAY_MS = 250;
const MAX_DELAY_MS = 5_000;

export interface StartupWait {
  /** Epoch ms after which a step that still fails fails the start. */
  deadlineMs: number;
  /** True once the processor is told to stop: a start still waiting gives up at once. */
  stopping: () => boolean;
  logger: Logger;
  now?: () => number;
  pause?: (ms: number) => Promise<unknown>;
}

/**
 * Runs one start step that needs a server (Kafka, ClickHouse, MongoDB), again with capped backoff while
 * it fails for a reason that may pass (a server restarting, not yet up), until the deadline. A processor
 * started while a store is down waits for it, as a running one does, instead of exiting: a new member
 * joining during a store outage is the normal case in an orchestrator, not a reason to crash-loop.
 * Configuration errors and refusals a retry cannot cure fail at once.
 */
export function untilAvailable<T>(step: string, action: () => Promise<T>, wait: StartupWait): Promise<T> {
  const now = wait.now ?? Date.now;
  return withBackoff(
    action,
    { firstDelayMs: FIRST_DELAY_MS, maxDelayMs: MAX_DELAY_MS, pause: wait.pause },
    (error, attempt, delayMs) => {
      if (isAgentmeterError(error, "CONFIG_INVALID") || isDeterministicStoreError(error)) throw error;
      if (wait.stopping())
        throw new AgentmeterError("SERVICE_UNAVAILABLE", `stopped while waiting for ${step}`);
      const left = wait.deadlineMs - now();
      if (left <= 0)
        throw new AgentmeterError(
          "SERVICE_UNAVAILABLE",
          `${step}: no answer before the start deadline (AGENTMETER_STARTUP_WAIT_MS): ${(error as Error).message ?? String(error)}`,
          { cause: error },
        );
      const retryInMs = Math.min(delayMs, left);
      wait.logger.warn(
        { err: error, step, attempt, retryInMs },
        "a server the processor needs to start is not answering; waiting",
      );
      return retryInMs;
    },
  );
}
