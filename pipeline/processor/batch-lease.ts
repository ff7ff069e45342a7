import { AgentmeterError } from "../errors.ts";

/**
 * kafkajs has no background heartbeat: a member that writes for longer than the session timeout
 * without calling heartbeat() is evicted while it still writes. The lease heartbeats on a timer for as
 * long as a batch is in hand, and remembers the first failure (a rebalance, an eviction), after which
 * the batch must be abandoned rather than retried: its partition may already belong to another member.
 */
export class BatchLease {
  private failure: unknown;
  private readonly timer: NodeJS.Timeout;

  constructor(heartbeat: () => Promise<void>, intervalMs: number) {
    this.timer = setInterval(() => {
      heartbeat().catch((error: unknown) => {
        this.failure ??= error;
      });
    }, intervalMs);
    this.timer.unref();
  }

  get lost(): boolean {
    return this.failure !== undefined;
  }

  /** Throws if the membership behind this batch was lost; called between the flush's steps. */
  check(): void {
    if (this.failure === undefined) return;
    throw new AgentmeterError("OWNERSHIP_LOST", "group membership lost while the batch was in hand", {
      cause: this.failure,
    });
  }

  release(): void {
    clearInterval(this.timer);
  }
}
