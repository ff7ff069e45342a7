import type { Money } from "../../schemas/api.ts";
import { microsToDecimalString } from "../../schemas/index.ts";

/** An exact amount as the API writes it: micros and the decimal for people, both strings. */
export function money(micros: bigint): Money {
  return { micros: micros.toString(), usd: microsToDecimalString(micros) };
}
