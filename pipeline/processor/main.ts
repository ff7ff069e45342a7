/**
 * `npm run processor`, or `node --import tsx pipeline/processor/main.ts` as the image's CMD, compose and
 * the Helm chart run it (the `agentmeter` CLI has no processor command): runs one processor instance
 * until SIGTERM or SIGINT, then drains the batch in hand, commits and exits 0. Whatever starts it must
 * deliver the signal to this node process itself (`exec` in the npm script, exec-form CMD in the image):
 * docs/security.md.
 */
import { redactText } from "../auth/redact.ts";
import { creditAuthorization } from "../auth/signature.ts";
import { type Config, ENTERPRISE_ID_MAX_LENGTH, loadConfig, maxEnterpriseIdLength } from "../config.ts";
import { isAgentmeterError } from "../errors.ts";
import { createLogger, type Logger } from "../log.ts";
import { HealthServer } from "../ops/health-server.ts";
import { DisabledMetrics, ProcessorMetrics } from "../ops/metrics.ts";
import { loadBillingConfig } from "../runtime/billing-config.ts";
import { Processor } from "./processor.ts";

/** The lines a processor logs once at start about how its configuration weakens what it enforces. */
export function startWarnings(config: Config): string[] {
  const warnings: string[] = [];
  const auth = creditAuthorization(config);
  if (!auth.required) warnings.push(auth.warning);
  const maxId = maxEnterpriseIdLength(config);
  if (maxId < ENTERPRISE_ID_MAX_LENGTH)
    warnings.push(
      `AGENTMETER_APP_DB_PREFIX=${config.AGENTMETER_APP_DB_PREFIX} leaves room for enterprise ids of at most ${maxId} characters in a 63-byte database name: records naming a longer one are refused`,
    );
  return warnings;
}

function logStartWarnings(config: Config, logger: Logger): void {
  for (const warning of startWarnings(config)) logger.warn(warning);
}

export async function runProcessor(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const config = loadConfig(env);
  const logger = createLogger(config.LOG_LEVEL, "agentmeter-processor");
  logStartWarnings(config, logger);
  // Port 0: nothing serves the metrics, so nothing counts them either.
  const metrics =
    config.AGENTMETER_METRICS_PORT === 0
      ? new DisabledMetrics()
      : new ProcessorMetrics({
          maxPendingRecords: config.AGENTMETER_MAX_PENDING_RECORDS,
          maxStoreLagSeconds: config.AGENTMETER_MAX_STORE_LAG_MS / 1000,
        });
  const processor = new Processor(config, loadBillingConfig(config), logger, { metrics });
  // Up before the processor starts: a probe sees "alive, not ready" while it connects and migrates.
  const health =
    config.AGENTMETER_METRICS_PORT === 0
      ? undefined
      : new HealthServer({
          metrics,
          liveness: () => processor.liveness(),
          readiness: () => processor.readiness(),
        });
  if (health !== undefined) {
    const address = await health.start(config.AGENTMETER_METRICS_PORT, config.AGENTMETER_METRICS_HOST);
    logger.info(address, "serving /metrics, /healthz and /readyz");
  }
  let stopping: Promise<void> | undefined;
  const shutdown = (signal: string): void => {
    if (stopping !== undefined) return;
    logger.info({ signal }, "stopping: finishing the batch in hand");
    stopping = processor
      .stop()
      .then(() => health?.close())
      .then(
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
      process.stderr.write(`${redactText(error.message)}\n`);
      process.exit(2);
    }
    // A server that did not answer is the operator's to fix: one line naming it. Anything else is a
    // bug, and its stack is where the fix starts.
    const unavailable = isAgentmeterError(error, "SERVICE_UNAVAILABLE");
    process.stderr.write(
      `processor failed to start: ${redactText(unavailable ? error.message : ((error as Error).stack ?? String(error)))}\n`,
    );
    process.exit(1);
  });
}
