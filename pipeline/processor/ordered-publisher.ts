import { AgentmeterError } from "../errors.ts";
import type { Decisions } from "./ports.ts";

interface Waiting {
  decisions: Decisions;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** The decisions of consecutive plans as one, in their order. */
export function mergeDecisions(all: readonly Decisions[]): Decisions {
  if (all.length === 1) return all[0]!;
  return {
    deadLetters: all.flatMap((decisions) => decisions.deadLetters),
    budgetEvents: all.flatMap((decisions) => decisions.budgetEvents),
    budgetStates: all.flatMap((decisions) => decisions.budgetStates),
    holdDecisions: all.flatMap((decisions) => decisions.holdDecisions),
  };
}

/**
 * One partition's decisions, published in the order they were made, one send at a time; whatever is
 * submitted while a send is out goes together in the next one. So the sends keep pace with the brokers'
 * round trips however small and frequent the batches are (a send per batch would queue behind each
 * other). After a failed send nothing more is sent: every later submission rejects with the same error,
 * so no decision reaches the bus after one before it was lost.
 */
export class OrderedPublisher {
  private waiting: Waiting[] = [];
  private inFlight: Promise<void> | undefined;
  private failure: unknown;
  private closed = false;

  constructor(private readonly send: (decisions: Decisions) => Promise<void>) {}

  /** Resolves once these decisions and every one submitted before are published. */
  submit(decisions: Decisions): Promise<void> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ decisions, resolve, reject });
      this.next();
    });
  }

  /** Sends nothing more; resolves once the send in flight has settled. */
  async close(): Promise<void> {
    this.closed = true;
    this.next();
    while (this.inFlight !== undefined) await this.inFlight;
  }

  private next(): void {
    if (this.inFlight !== undefined || this.waiting.length === 0) return;
    const group = this.waiting;
    this.waiting = [];
    if (this.closed) this.failure ??= new AgentmeterError("OWNERSHIP_LOST", "publisher closed");
    if (this.failure !== undefined) {
      for (const waiting of group) waiting.reject(this.failure);
      return;
    }
    this.inFlight = this.send(mergeDecisions(group.map((waiting) => waiting.decisions)))
      .then(
        () => {
          for (const waiting of group) waiting.resolve();
        },
        (error: unknown) => {
          this.failure = error;
          for (const waiting of group) waiting.reject(error);
        },
      )
      .finally(() => {
        this.inFlight = undefined;
        this.next();
      });
  }
}
