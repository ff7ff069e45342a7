/**
 * `agentmeter process` / `npm run processor`: runs one processor instance until SIGTERM or SIGINT,
 * then drains the batch in hand, commits and exits 0.
 */
import { readFileSync } from "node:fs";
import { type Config, loadConfig } from "../config.ts";
import { type BillingConfig, parseBillingConfig } from "../core/index.ts";
import { AgentmeterError, isAgentmeterError } from "../errors.ts";
import { createLogger } from "../log.ts";
import { Processor } from "./processor.ts";

export function loadBillingConfig(config: Config): BillingConfig {
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

export async function runProcessor(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env);
  const logger = createLogger(config.LOG_LEVEL, "agentmeter-processor");
  const processor = new Processor(config, loadBillingConfig(config), logger);
  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string): void => {
    if (stopping !== undefined) return;
    logger.info({ signal }, "stopping: finishing the batch in hand");
    stopping = processor.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, "unclean stop");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => shutdown("SIGTERM"));
  process.on("SIGINT", () => shutdown("SIGINT"));
  await processor.start();
}

if (import.meta.url === `file://${process.argv[1]}`) {
  runProcessor().catch((error: unknown) => {
    if (isAgentmeterError(error, "CONFIG_INVALID")) {
      process.stderr.write(`${error.message}\n`);
      process.exit(2);
    }
    process.stderr.write(`processor failed to start: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
}
