import { z } from "zod";

/** ISO-8601 date-time with an explicit zone (`Z` or `+hh:mm`): a time without a zone is ambiguous. */
export const isoDateTimeSchema = z.iso.datetime({ offset: true });

/** Epoch milliseconds of an ISO date-time that the schema already accepted. Pure (no clock). */
export function epochMs(isoDateTime: string): number {
  return Date.parse(isoDateTime);
}
