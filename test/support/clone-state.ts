import { LayeredMap } from "../../pipeline/core/layered-map.ts";

/**
 * A deep copy of an account state or stored body, sharing nothing: what tests used structuredClone for.
 * structuredClone sees a LayeredMap's (empty) Map storage, not its entries (pipeline/core/layered-map.ts),
 * so it would hand back accounts that forgot their dedupe ids and correction memos.
 */
export function cloneState<T>(value: T): T {
  return copy(value) as T;
}

function copy(value: unknown): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (value instanceof LayeredMap) return value.unrelated([...value].map(([k, v]) => [k, copy(v)] as const));
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [copy(k), copy(v)] as const));
  if (value instanceof Set) return new Set([...value].map(copy));
  if (value instanceof Date) return new Date(value.getTime());
  if (Array.isArray(value)) return value.map(copy);
  const result: Record<string, unknown> = Object.create(Object.getPrototypeOf(value));
  for (const key of Object.keys(value)) result[key] = copy((value as Record<string, unknown>)[key]);
  return result;
}
