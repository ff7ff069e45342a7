import { AgentmeterError, isAgentmeterError } from "../../schemas/errors.ts";

const UNREACHABLE_NAMES = new Set([
  "KafkaJSConnectionError",
  "KafkaJSNumberOfRetriesExceeded",
  "KafkaJSBrokerNotFound",
  "KafkaJSRequestTimeoutError",
  "MongoServerSelectionError",
  "MongoNetworkError",
  "MongoNetworkTimeoutError",
  "MongoTopologyClosedError",
]);
const UNREACHABLE_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "EPIPE",
]);

/** Whether the error says a server did not answer (refused, reset, timed out, not found), not that it refused the work. */
export function looksUnreachable(error: unknown, depth = 0): boolean {
  if (depth > 4 || error === null || typeof error !== "object") return false;
  const { name, code, message, cause, originalError } = error as Record<string, unknown>;
  if (typeof name === "string" && UNREACHABLE_NAMES.has(name)) return true;
  if (typeof code === "string" && UNREACHABLE_CODES.has(code)) return true;
  if (typeof message === "string" && /ECONNREFUSED|socket hang up|Timeout error/.test(message)) return true;
  return looksUnreachable(cause, depth + 1) || looksUnreachable(originalError, depth + 1);
}

/**
 * Runs one store's work and turns "the server does not answer" into SERVICE_UNAVAILABLE naming the
 * store and where it was looked for (the CLI maps it to exit code 3). Other errors pass through.
 */
export async function reach<T>(store: string, where: string, action: () => Promise<T>): Promise<T> {
  try {
    return await action();
  } catch (error) {
    if (isAgentmeterError(error) || !looksUnreachable(error)) throw error;
    throw new AgentmeterError(
      "SERVICE_UNAVAILABLE",
      `${store} at ${where} does not answer: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
}
