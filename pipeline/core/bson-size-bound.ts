import { LayeredMap } from "./layered-map.ts";

/** int32 length + terminator, and per element a type byte and the key's cstring. */
const DOCUMENT_OVERHEAD = 5;
const ELEMENT_OVERHEAD = 2;

/**
 * An upper bound of a value's BSON size, cheap enough to run on every account a batch writes. The exact
 * size (BSON.calculateObjectSize) measures every string's UTF-8 length and checks every value for BSON's
 * special types; on the processor's hold workload that was about a tenth of its CPU, all to learn that a
 * few-kilobyte document is under a 15 MiB limit. A string's UTF-8 bytes are at most three per UTF-16 unit,
 * so this bound counts three and never walks a string; only a value whose bound reaches the limit needs
 * the exact size. Returns undefined for a value it does not know (the caller measures it exactly).
 */
export function bsonSizeBound(document: object): number | undefined {
  let total = DOCUMENT_OVERHEAD;
  // An account's id and memo maps keep their bound as entries come and go (boundedMap): a busy
  // account's 50,000 ids are not walked on every batch. A map without one is walked as any Map.
  if (document instanceof LayeredMap) {
    const weight = document.weight;
    if (weight !== undefined) return total + weight;
  }
  if (document instanceof Map) {
    for (const [key, value] of document) {
      if (typeof key !== "string") return undefined;
      const size = valueBound(value);
      if (size === undefined) return undefined;
      total += ELEMENT_OVERHEAD + 3 * key.length + size;
    }
    return total;
  }
  if (Array.isArray(document)) {
    for (let index = 0; index < document.length; index++) {
      const size = valueBound(document[index]);
      if (size === undefined) return undefined;
      total += ELEMENT_OVERHEAD + String(index).length + size;
    }
    return total;
  }
  const prototype = Object.getPrototypeOf(document);
  if (prototype !== Object.prototype && prototype !== null) return undefined;
  for (const key of Object.keys(document)) {
    const size = valueBound((document as Record<string, unknown>)[key]);
    if (size === undefined) return undefined;
    total += ELEMENT_OVERHEAD + 3 * key.length + size;
  }
  return total;
}

function valueBound(value: unknown): number | undefined {
  switch (typeof value) {
    case "string":
      return 5 + 3 * value.length;
    case "number":
    case "bigint":
      return 8;
    case "boolean":
      return 1;
    case "undefined":
    case "function":
      return 0;
    case "object":
      if (value === null) return 0;
      if (value instanceof Date) return 8;
      return bsonSizeBound(value);
    default:
      return undefined;
  }
}

/**
 * One element's share of a bound, with every string's UTF-8 length measured (a cstring key, or a
 * length, bytes and terminator): tighter than bsonSizeBound's three bytes per unit, and paid once, when
 * the entry is set. Numbers count 8 (a double or an int64), as there.
 */
export function entryBound(key: string, value: unknown): number | undefined {
  const size = measuredValueBound(value);
  return size === undefined ? undefined : ELEMENT_OVERHEAD + Buffer.byteLength(key) + size;
}

function measuredValueBound(value: unknown): number | undefined {
  switch (typeof value) {
    case "string":
      return 5 + Buffer.byteLength(value);
    case "object": {
      if (value === null || value instanceof Date || value instanceof Map || Array.isArray(value))
        return valueBound(value);
      const prototype = Object.getPrototypeOf(value);
      if (prototype !== Object.prototype && prototype !== null) return undefined;
      let total = DOCUMENT_OVERHEAD;
      for (const key of Object.keys(value)) {
        const size = entryBound(key, (value as Record<string, unknown>)[key]);
        if (size === undefined) return undefined;
        total += size;
      }
      return total;
    }
    default:
      return valueBound(value);
  }
}

/**
 * A LayeredMap keyed by ids whose weight is its bound as a BSON document, kept as entries are set and
 * deleted: an account's dedupe ids and correction memos (values never mutated once set), so the
 * processor's size check of a written account does not walk them.
 */
export function boundedMap<V>(entries?: Iterable<readonly [string, V]>): LayeredMap<string, V> {
  return new LayeredMap<string, V>(entries, entryBound);
}
