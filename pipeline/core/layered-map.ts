/**
 * A Map whose copy costs O(1), and whose versions each cost O(1) per change.
 *
 * Why: `applyBatch` never mutates the state it is given, so the processor copies every account it
 * touches once a batch. An account's dedupe ids (up to `dedupe.max_entries`, 50,000 by default, within
 * the horizon) and correction memos (up to 10,000) grow with its records, and `new Map(old)` copied all
 * of them: about 20 ms a batch for a busy account on this project's machines, whatever the batch held
 * (`npm run bench:history`).
 *
 * How (Baker's rerooting, as in persistent arrays): all versions of one map share a single Map, held by
 * the newest version read or written (the root). Every other version is a chain of single changes that
 * leads to the root. Reading or writing a version first makes it the root, undoing and redoing the
 * changes between the two; the processor works on its newest version, so that walk is empty, and the
 * write-behind stage reads a version a few batches old. After a copy, each change leaves the
 * previous version one step behind instead of changing it.
 *
 * It extends Map and overrides every method that reads or writes entries, so `instanceof Map`,
 * `for...of`, spreading and node's deep equality see its entries. Iteration walks a snapshot of the
 * entries, so deleting while iterating, or reading another version meanwhile, is safe. The order is
 * insertion order, except that a key a newer version deleted comes last in an older version read after
 * it. No rule depends on that order (sweeps and caps select by event time, then id). The Map's own
 * storage stays empty: `structuredClone` or `postMessage` would see no entries (no account state
 * crosses threads: audit workers send back figures).
 */
export class LayeredMap<K, V> extends Map<K, V> {
  #node: VersionNode<K, V> = new VersionNode(new Map());
  #lineage: Lineage = { reroots: 0 };
  #size = 0;
  readonly #weigh: Weigh<K, V> | undefined;
  /** Undefined until `weight` is first read: a map nobody weighs (the audit's) pays nothing per entry. */
  #weight: number | undefined = undefined;

  /**
   * `weigh`, when given, is summed over the entries (`weight`): walked at the first read, then kept as
   * entries are set and deleted, so the figure (the account document's size bound) costs nothing per
   * later read. It must depend only on the key and value (a value is never mutated once set); undefined
   * makes the weight unknown.
   */
  constructor(entries?: Iterable<readonly [K, V]>, weigh?: Weigh<K, V>) {
    // Map's constructor would call the overridden set before the fields above exist.
    super();
    this.#weigh = weigh;
    if (entries !== undefined) for (const [key, value] of entries) this.set(key, value);
  }

  override get size(): number {
    return this.#size;
  }

  /** The sum of `weigh` over the entries; undefined without `weigh` or once it returned undefined. */
  get weight(): number | undefined {
    const weigh = this.#weigh;
    if (weigh === undefined) return undefined;
    if (this.#weight === undefined) {
      let weight = 0;
      this.#map().forEach((value, key) => {
        weight += weigh(key, value) ?? Number.NaN;
      });
      this.#weight = weight;
    }
    return Number.isNaN(this.#weight) ? undefined : this.#weight;
  }

  override has(key: K): boolean {
    return this.#map().has(key);
  }

  override get(key: K): V | undefined {
    return this.#map().get(key);
  }

  override set(key: K, value: V): this {
    const map = this.#writable(key);
    const weigh = this.#weight === undefined ? undefined : this.#weigh;
    if (!map.has(key)) this.#size += 1;
    else if (weigh !== undefined) this.#weight! -= weigh(key, map.get(key) as V) ?? Number.NaN;
    if (weigh !== undefined) this.#weight! += weigh(key, value) ?? Number.NaN;
    map.set(key, value);
    return this;
  }

  override delete(key: K): boolean {
    if (!this.#map().has(key)) return false;
    const map = this.#writable(key);
    if (this.#weight !== undefined && this.#weigh !== undefined)
      this.#weight -= this.#weigh(key, map.get(key) as V) ?? Number.NaN;
    map.delete(key);
    this.#size -= 1;
    return true;
  }

  override clear(): void {
    this.#node = new VersionNode(new Map());
    this.#lineage = { reroots: 0 };
    this.#size = 0;
    this.#weight = this.#weight === undefined ? undefined : 0;
  }

  /** An independent map with the same entries; neither sees the other's later changes. O(1). */
  copy(): LayeredMap<K, V> {
    const copy = new LayeredMap<K, V>(undefined, this.#weigh);
    this.#node.shared = true;
    copy.#node = this.#node;
    copy.#lineage = this.#lineage;
    copy.#size = this.#size;
    copy.#weight = this.#weight;
    return copy;
  }

  /** A map of `entries` with no history shared with this one, weighed as this one is. */
  unrelated(entries?: Iterable<readonly [K, V]>): LayeredMap<K, V> {
    return new LayeredMap<K, V>(entries, this.#weigh);
  }

  /** The shared Map, holding this version. */
  #map(): Map<K, V> {
    const node = this.#node;
    if (node.map !== undefined) return node.map;
    this.#lineage.reroots += 1;
    return rootMap(node);
  }

  /**
   * The shared Map, about to change at `key`. When another version may lead to this one, this version
   * moves to a new root and the old root becomes the change that takes it back.
   */
  #writable(key: K): Map<K, V> {
    const node = this.#node;
    const map = this.#map();
    if (!node.shared) return map;
    const next = new VersionNode<K, V>(map);
    // Whoever reaches `node` now reaches `next` through it: `next` is shared from its start.
    next.shared = true;
    node.becomeChange(key, map, next);
    this.#node = next;
    return map;
  }

  override entries(): MapIterator<[K, V]> {
    return Array.from(this.#map()).values() as MapIterator<[K, V]>;
  }

  override [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries();
  }

  override keys(): MapIterator<K> {
    return Array.from(this.#map().keys()).values() as MapIterator<K>;
  }

  override values(): MapIterator<V> {
    return Array.from(this.#map().values()).values() as MapIterator<V>;
  }

  /**
   * Visits the shared Map itself, with no snapshot: the walk for hot paths (the size bound, packing),
   * several times faster than iterating. A callback that reads another version of this map would
   * move the shared Map under the walk: that throws instead of visiting a mix of versions.
   */
  override forEach(callback: (value: V, key: K, map: Map<K, V>) => void, thisArg?: unknown): void {
    const lineage = this.#lineage;
    const map = this.#map();
    const reroots = lineage.reroots;
    map.forEach((value, key) => {
      if (lineage.reroots !== reroots)
        throw new Error("LayeredMap.forEach: another version of the map was read during the walk");
      callback.call(thisArg, value, key, this);
    });
  }

  /** For node's inspect (console.log, assertion messages): the entries, not the unused Map storage. */
  [Symbol.for("nodejs.util.inspect.custom")](): Map<K, V> {
    return new Map(this.#map());
  }
}

/** A figure of one entry, summed over the map (LayeredMap's `weight`). */
export type Weigh<K, V> = (key: K, value: V) => number | undefined;

/** What the versions of one map share besides the Map: how often it was moved to another version. */
type Lineage = { reroots: number };

/**
 * One version's place in the shared history. The root holds the Map; any other node is its `next`
 * with one key changed (`present`, `value`: that key as this version has it).
 */
class VersionNode<K, V> {
  map: Map<K, V> | undefined;
  key: K | undefined = undefined;
  present = false;
  value: V | undefined = undefined;
  next: VersionNode<K, V> | undefined = undefined;
  /** Set once a copy or an older version may reach this node; from then on, changes are recorded. */
  shared = false;

  constructor(map: Map<K, V> | undefined) {
    this.map = map;
  }

  /** This root becomes the change from `next` (which takes its Map) back to this version at `key`. */
  becomeChange(key: K, map: Map<K, V>, next: VersionNode<K, V>): void {
    this.present = map.has(key);
    this.value = this.present ? map.get(key) : undefined;
    this.key = key;
    this.next = next;
    this.map = undefined;
  }
}

/** The shared Map, with `node`'s version in it (the changes on the way from the root undone). */
function rootMap<K, V>(node: VersionNode<K, V>): Map<K, V> {
  if (node.map !== undefined) return node.map;
  const path: VersionNode<K, V>[] = [];
  let root = node;
  while (root.map === undefined) {
    path.push(root);
    root = root.next!;
  }
  // Walk back from the root: each step makes the next node of the path the root.
  for (let i = path.length - 1; i >= 0; i--) {
    const change = path[i]!;
    const map = root.map!;
    const key = change.key as K;
    const present = change.present;
    const value = change.value as V;
    root.becomeChange(key, map, change);
    if (present) map.set(key, value);
    else map.delete(key);
    change.map = map;
    change.key = undefined;
    change.value = undefined;
    change.next = undefined;
    root = change;
  }
  return node.map!;
}
