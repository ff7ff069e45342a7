import type { BudgetState } from "../../schemas/index.ts";
import { BudgetView, type Staleness } from "../../sdk/budget-view.ts";
import type { Config } from "../config.ts";
import { createKafka } from "../kafka.ts";
import type { Logger } from "../log.ts";

/** The budget states agent runtimes see: the latest state per account key on the budget-state topic. */
export interface BudgetStates {
  get(accountKey: string): { state: BudgetState | null; staleness: Staleness };
  stop(): Promise<void>;
}

/**
 * The SDK's BudgetView over the compacted budget-state topic (a throwaway consumer group reading it
 * from the beginning and following it). Not awaited to its end: until it has read what the topic held
 * at start, the account route answers budget state from MongoDB and says so. It holds the latest state
 * of every account in memory, as every SDK client with a view does (a few hundred bytes per account).
 * The topic must exist: IngestProducer.connect creates the topics first.
 */
export async function startBudgetView(config: Config, logger: Logger): Promise<BudgetStates> {
  const view = new BudgetView(
    createKafka(config, logger),
    config.AGENTMETER_STATE_TOPIC,
    `${config.KAFKA_CLIENT_ID}-api`,
    logger,
  );
  await view.start();
  return view;
}
