import { z } from "zod";

/** ISO-8601 date-time with an explicit zone (`Z` or `+hh:mm`): a time without a zone is ambiguous. */
export const isoDateTimeSchema = z.iso.datetime({ offset: true });

/**
 * Epoch milliseconds of an ISO date-time that the schema already accepted: exactly what `Date.parse`
 * gives (fractions past milliseconds cut off, not rounded). Pure (no clock).
 *
 * Every record's `occurred_at` is a new string, so a cache keyed by the text missed on most records
 * and paid for hashing the string, a map insert and `Date.parse` (0.8 µs a record, 4-5% of an audit
 * worker's CPU). The schema's form (`YYYY-MM-DDTHH:MM:SS[.f+](Z|±HH:MM)`) is read here digit by digit
 * instead; anything else goes to `Date.parse`. test/unit/epoch-ms.test.ts compares the two on a
 * generated corpus.
 */
export function epochMs(isoDateTime: string): number {
  // The core asks for one record's occurred_at several times in a row: the same string object, so
  // this comparison is a pointer check.
  if (isoDateTime === lastTime) return lastMs;
  const ms = parseIsoDateTime(isoDateTime);
  lastTime = isoDateTime;
  lastMs = ms;
  return ms;
}

let lastTime: string | undefined;
let lastMs = Number.NaN;

const DASH = 45;
const COLON = 58;
const DOT = 46;
const PLUS = 43;
const ZULU = 90;
const T = 84;

/** The number `count` decimal digits at `at` spell, or -1 if one is not a digit. */
function digits(text: string, at: number, count: number): number {
  let value = 0;
  for (let i = at; i < at + count; i++) {
    const digit = text.charCodeAt(i) - 48;
    if (digit < 0 || digit > 9) return -1;
    value = value * 10 + digit;
  }
  return value;
}

/** Days from 1970-01-01 to a proleptic Gregorian date (H. Hinnant's days_from_civil), any year. */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yearOfEra = y - era * 400;
  const dayOfYear = Math.floor((153 * ((month + 9) % 12) + 2) / 5) + day - 1;
  const dayOfEra = yearOfEra * 365 + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100) + dayOfYear;
  return era * 146_097 + dayOfEra - 719_468;
}

function parseIsoDateTime(text: string): number {
  const length = text.length;
  if (
    length < 20 ||
    text.charCodeAt(4) !== DASH ||
    text.charCodeAt(7) !== DASH ||
    text.charCodeAt(10) !== T ||
    text.charCodeAt(13) !== COLON ||
    text.charCodeAt(16) !== COLON
  )
    return Date.parse(text);
  const year = digits(text, 0, 4);
  const month = digits(text, 5, 2);
  const day = digits(text, 8, 2);
  const hour = digits(text, 11, 2);
  const minute = digits(text, 14, 2);
  const second = digits(text, 17, 2);
  if (year < 0 || month < 1 || month > 12 || day < 1 || day > 31) return Date.parse(text);
  if (hour < 0 || hour > 23 || minute < 0 || minute > 59 || second < 0 || second > 59)
    return Date.parse(text);
  let at = 19;
  let millis = 0;
  if (text.charCodeAt(at) === DOT) {
    const first = ++at;
    for (; at < length; at++) {
      const digit = text.charCodeAt(at) - 48;
      if (digit < 0 || digit > 9) break;
      // Date.parse keeps milliseconds and drops the rest.
      if (at - first < 3) millis = millis * 10 + digit;
    }
    if (at === first) return Date.parse(text);
    for (let kept = Math.min(at - first, 3); kept < 3; kept++) millis *= 10;
  }
  let offsetMinutes = 0;
  const zone = text.charCodeAt(at);
  if (zone === ZULU && at === length - 1) {
    offsetMinutes = 0;
  } else if ((zone === PLUS || zone === DASH) && at === length - 6 && text.charCodeAt(at + 3) === COLON) {
    const offsetHours = digits(text, at + 1, 2);
    const offsetMins = digits(text, at + 4, 2);
    if (offsetHours < 0 || offsetHours > 23 || offsetMins < 0 || offsetMins > 59) return Date.parse(text);
    offsetMinutes = (zone === PLUS ? 1 : -1) * (offsetHours * 60 + offsetMins);
  } else {
    return Date.parse(text);
  }
  const seconds = ((hour * 60 + minute - offsetMinutes) * 60 + second) * 1000 + millis;
  return daysFromCivil(year, month, day) * 86_400_000 + seconds;
}
