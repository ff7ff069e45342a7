import { GroupedSends } from "../../sinks/kafka/grouped-sends.ts";
import { AgentmeterError } from "../errors.ts";
import type { Decisions } from "./ports.ts";

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
 * so no decision reaches the bus after one before it was lost. `submit` resolves once these decisions and
 * every one submitted before are published; `close` sends nothing more and resolves once the send in
 * flight has settled.
 */
export class OrderedPublisher extends GroupedSends<Decisions> {
  constructor(send: (decisions: Decisions) => Promise<void>) {
    super(send, {
      merge: mergeDecisions,
      poison: true,
      closedError: () => new AgentmeterError("OWNERSHIP_LOST", "publisher closed"),
    });
  }
}
