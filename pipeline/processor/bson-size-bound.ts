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
