import { AgentmeterError } from "../../schemas/errors.ts";
import {
  type BillingConfigInput,
  billingConfigSchema,
  formatIssues,
  type ParsedBillingConfig,
  type PriceBook,
} from "../../schemas/index.ts";
import { defaultPriceBook } from "./default-price-book.ts";

export type { BillingConfigInput };
export { billingConfigSchema };

/** Validated billing parameters, with the price book always present. */
export type BillingConfig = Omit<ParsedBillingConfig, "price_book"> & { price_book: PriceBook };

/**
 * Validates a config (from a file, env or a test) and fills defaults; a missing price book means the
 * default one. Throws CONFIG_INVALID naming every bad field.
 */
export function parseBillingConfig(input: unknown): BillingConfig {
  const parsed = billingConfigSchema.safeParse(input ?? {});
  if (!parsed.success) {
    throw new AgentmeterError("CONFIG_INVALID", `billing config: ${formatIssues(parsed.error.issues)}`, {
      details: { issues: parsed.error.issues },
    });
  }
  return { ...parsed.data, price_book: parsed.data.price_book ?? defaultPriceBook };
}

export const defaultBillingConfig: BillingConfig = parseBillingConfig({});
