/**
 * State maps are plain objects keyed by ids (they are stored as MongoDB documents), so lookups must
 * ignore Object.prototype: `chats["constructor"]` must be undefined, not a function.
 */
export function ownValue<V>(map: Readonly<Record<string, V>>, key: string): V | undefined {
  return Object.hasOwn(map, key) ? map[key] : undefined;
}

/** Keys in a fixed order, independent of how the object was built or reloaded. */
export function sortedKeys(map: Readonly<Record<string, unknown>>): string[] {
  return Object.keys(map).sort();
}

/**
 * An empty plain object in V8's dictionary mode. State maps are keyed by ids that are all different
 * (record ids, chat ids): added one by one to an ordinary object, each new key makes a new hidden class
 * and copies the previous one's descriptors (quadratic in the keys), and copying such an object takes
 * a slow path. A map in dictionary mode is a hash table from the start. It is still a plain object
 * (Object.prototype, own enumerable keys in insertion order): JSON, BSON and deepStrictEqual see no
 * difference.
 */
export function emptyMap<V>(): Record<string, V> {
  const map: Record<string, V> = { "\u0000": undefined as V };
  delete map["\u0000"];
  return map;
}

/** A copy of a state map (same keys in the same order), in dictionary mode; `copy` copies each value. */
export function copyMap<V>(map: Readonly<Record<string, V>>, copy?: (value: V) => V): Record<string, V> {
  const result = emptyMap<V>();
  const keys = Object.keys(map);
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!;
    result[key] = copy === undefined ? map[key]! : copy(map[key]!);
  }
  return result;
}
