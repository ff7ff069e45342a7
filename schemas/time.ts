import { z } from "zod";

/** ISO-8601 date-time with an explicit zone (`Z` or `+hh:mm`): a time without a zone is ambiguous. */
export const isoDateTimeSchema = z.iso.datetime({ offset: true });

/** Epoch milliseconds of an ISO date-time that the schema already accepted. Pure (no clock). */
export function epochMs(isoDateTime: string): number {
  // The core asks for one record's occurred_at several times in a row: the same string object, so
  // this comparison is a pointer check and skips the map's hashing.
  if (isoDateTime === lastTime) return lastMs;
  let ms = parsedTimes.get(isoDateTime);
  if (ms === undefined) {
    ms = Date.parse(isoDateTime);
    if (parsedTimes.size >= PARSED_TIMES_MAX) parsedTimes.clear();
    parsedTimes.set(isoDateTime, ms);
  }
  lastTime = isoDateTime;
  lastMs = ms;
  return ms;
}

/**
 * The billing core reads the same times again and again (a record's occurred_at, its chat's started_at
 * and last_event_at, the price book's effective_from): Date.parse once per distinct string. A pure cache
 * (same string, same number), emptied when full, so it cannot grow without bound.
 */
const parsedTimes = new Map<string, number>();
const PARSED_TIMES_MAX = 4096;
let lastTime: string | undefined;
let lastMs = Number.NaN;
