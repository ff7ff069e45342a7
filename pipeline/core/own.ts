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
