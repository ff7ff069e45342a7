/**
 * The one loader of the billing configuration (prices, splits, allowances, limits) for every runtime
 * that reads it from the environment: the processor, the audit, the demo and the SDK's mock mode.
 */
import { readFileSync } from "node:fs";
import type { Config } from "../config.ts";
import { type BillingConfig, parseBillingConfig } from "../core/index.ts";
import { AgentmeterError, isAgentmeterError } from "../errors.ts";

/** `AGENTMETER_BILLING_CONFIG` (a JSON file), or the defaults when unset; one line naming the file on error. */
export function loadBillingConfig(config: Pick<Config, "AGENTMETER_BILLING_CONFIG">): BillingConfig {
  const path = config.AGENTMETER_BILLING_CONFIG;
  if (path === undefined) return parseBillingConfig({});
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new AgentmeterError(
      "CONFIG_INVALID",
      `config: AGENTMETER_BILLING_CONFIG=${path} cannot be read: ${(error as Error).message}`,
    );
  }
  try {
    return parseBillingConfig(JSON.parse(text));
  } catch (error) {
    const reason = isAgentmeterError(error) ? error.message : `not JSON: ${(error as Error).message}`;
    throw new AgentmeterError("CONFIG_INVALID", `config: AGENTMETER_BILLING_CONFIG=${path}: ${reason}`);
  }
}
