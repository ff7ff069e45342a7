import { z } from "zod";
import { AgentmeterError } from "../../schemas/errors.ts";
import { shownValue } from "../auth/redact.ts";
import { type Config, loadConfig, wholeNumber } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import { loadBillingConfig } from "../runtime/billing-config.ts";
import { type ApiKey, parseApiKeys } from "./keys.ts";

/**
 * `agentmeter serve`'s own variables, beside the pipeline's (pipeline/config.ts gives the brokers,
 * stores and topics). Read once at start; a bad value stops the server with one line naming it.
 */
export const ServeConfigSchema = z.object({
  AGENTMETER_API_HOST: z.string().min(1).default("127.0.0.1"),
  AGENTMETER_API_PORT: wholeNumber(0, 65_535).default(8080),
  /** `name:sha256hex:scope` entries, comma-separated (keys.ts; `agentmeter keys create` makes one). */
  AGENTMETER_API_KEYS: z.string().default(""),
  /** Most records one POST /v1/records may carry. */
  AGENTMETER_API_MAX_BATCH: wholeNumber(1, 100_000).default(1_000),
  /** Largest request body in bytes (a batch of records, JSON). */
  AGENTMETER_API_BODY_LIMIT: wholeNumber(64 * 1024, 64 * 1024 * 1024).default(4 * 1024 * 1024),
  /** How long SIGTERM waits for requests in flight (and their broker acknowledgements). */
  AGENTMETER_API_SHUTDOWN_MS: wholeNumber(1, 120_000).default(15_000),
  /**
   * Which creator owns an app (ownership.ts): `pinned` trusts only the billing config's `apps` pins;
   * `pinned_then_projection` falls back to the processor's Enterprises projection for unpinned apps.
   */
  AGENTMETER_API_APP_OWNERS: z.enum(["pinned", "pinned_then_projection"]).default("pinned_then_projection"),
});

export type ServeSettings = Omit<z.infer<typeof ServeConfigSchema>, "AGENTMETER_API_KEYS"> & {
  keys: readonly ApiKey[];
};

export interface ServeConfig {
  pipeline: Config;
  serve: ServeSettings;
  /** The processor's billing config (AGENTMETER_BILLING_CONFIG): the API reads its pinned app creators. */
  billing: BillingConfig;
}

export function loadServeConfig(
  env: Readonly<Record<string, string | undefined>> = process.env,
): ServeConfig {
  const pipeline = loadConfig(env);
  const known = Object.fromEntries(
    Object.keys(ServeConfigSchema.shape)
      .filter((name) => env[name] !== undefined && env[name] !== "")
      .map((name) => [name, env[name]]),
  );
  const parsed = ServeConfigSchema.safeParse(known);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const name = String(issue?.path[0] ?? "?");
    throw new AgentmeterError(
      "CONFIG_INVALID",
      `config: ${name}=${name === "AGENTMETER_API_KEYS" ? "<redacted>" : shownValue(name, env[name])} is invalid: ${issue?.message ?? "invalid"}`,
      { details: { variable: name } },
    );
  }
  const { AGENTMETER_API_KEYS, ...rest } = parsed.data;
  return {
    pipeline,
    serve: { ...rest, keys: parseApiKeys(AGENTMETER_API_KEYS) },
    billing: loadBillingConfig(pipeline),
  };
}
