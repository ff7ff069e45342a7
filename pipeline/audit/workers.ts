import { availableParallelism } from "node:os";
import { AgentmeterError } from "../../schemas/errors.ts";
import { shownValue } from "../auth/redact.ts";
import { wholeNumber } from "../config.ts";

/** The variable that sets how many worker threads recompute an audit (or a dry run); --workers beats it. */
export const AUDIT_WORKERS_VARIABLE = "AGENTMETER_AUDIT_WORKERS";

export const MAX_AUDIT_WORKERS = 64;

const MESSAGE = `expected a whole number from 0 (recompute in the main thread) to ${MAX_AUDIT_WORKERS}`;

/** Worker threads of an audit: 0 recomputes in the main thread, N in N worker threads. */
export const auditWorkersSchema = wholeNumber(0, MAX_AUDIT_WORKERS, MESSAGE);

/** One worker thread per core (never more than the maximum). */
export function defaultAuditWorkers(): number {
  return Math.min(MAX_AUDIT_WORKERS, Math.max(1, availableParallelism()));
}

/**
 * The worker count: the --workers flag if given, else AGENTMETER_AUDIT_WORKERS if set, else one per
 * core. A bad value fails with one line naming the flag or the variable (CLI_USAGE, CONFIG_INVALID).
 */
export function auditWorkers(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>> = process.env,
): number {
  if (flag !== undefined) {
    const parsed = auditWorkersSchema.safeParse(flag);
    if (!parsed.success)
      throw new AgentmeterError(
        "CLI_USAGE",
        `--workers ${JSON.stringify(flag)} is invalid: ${parsed.error.issues[0]?.message ?? MESSAGE}`,
      );
    return parsed.data;
  }
  const value = env[AUDIT_WORKERS_VARIABLE];
  if (value === undefined || value === "") return defaultAuditWorkers();
  const parsed = auditWorkersSchema.safeParse(value);
  if (!parsed.success)
    throw new AgentmeterError(
      "CONFIG_INVALID",
      `config: ${AUDIT_WORKERS_VARIABLE}=${shownValue(AUDIT_WORKERS_VARIABLE, value)} is invalid: ${parsed.error.issues[0]?.message ?? MESSAGE}`,
      { details: { variable: AUDIT_WORKERS_VARIABLE } },
    );
  return parsed.data;
}
