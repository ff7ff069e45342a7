import type { FastifyRequest } from "fastify";
import { type ApiKey, findKey, type Scope } from "./keys.ts";
import { ApiProblem, notFound } from "./problem.ts";

/** What a route needs of its caller's key. */
export type Access = "ingest" | "read";

function presentedSecret(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (typeof header === "string" && header.startsWith("Bearer "))
    return header.slice("Bearer ".length).trim();
  const apiKey = request.headers["x-api-key"];
  return typeof apiKey === "string" ? apiKey.trim() : undefined;
}

/** The caller's key, or 401; a key without the access the route needs, 403. */
export function authenticate(keys: readonly ApiKey[], request: FastifyRequest, access: Access): ApiKey {
  const secret = presentedSecret(request);
  if (secret === undefined || secret === "")
    throw new ApiProblem("UNAUTHENTICATED", "an API key is required (Authorization: Bearer <key>)");
  const key = findKey(keys, secret);
  if (key === undefined) throw new ApiProblem("UNAUTHENTICATED", "the API key is not valid");
  if (!allows(key.scope, access))
    throw new ApiProblem(
      "FORBIDDEN",
      `the key '${key.name}' may not ${access === "ingest" ? "send records" : "read"}`,
    );
  return key;
}

const callers = new WeakMap<FastifyRequest, ApiKey>();

/**
 * A route's first hook: the caller is authenticated before its body is read or validated, so a caller
 * without a key learns nothing from validation messages and costs no parsing.
 */
export function guard(keys: readonly ApiKey[], access: Access) {
  return async (request: FastifyRequest): Promise<void> => {
    callers.set(request, authenticate(keys, request, access));
  };
}

/** The key guard() authenticated for this request. */
export function callerOf(request: FastifyRequest): ApiKey {
  const key = callers.get(request);
  if (key === undefined) throw new Error("route without guard()");
  return key;
}

function allows(scope: Scope, access: Access): boolean {
  if (scope.kind === "admin") return true;
  if (access === "ingest") return scope.kind === "ingest";
  return scope.kind === "read" || scope.kind === "creator";
}

/**
 * Whether the key may see what belongs to this creator. A creator's key asking for another's is
 * answered exactly as for something that does not exist (404), so it learns nothing about it.
 */
export function requireCreator(key: ApiKey, mozaiksUserId: string | null, what: string): void {
  if (mozaiksUserId === null) throw notFound(what);
  if (key.scope.kind === "creator" && key.scope.mozaiksUserId !== mozaiksUserId) throw notFound(what);
}

/**
 * The creator whose records a key may see of an app it may read: its own for a creator key, null (all)
 * for read and admin keys. An unpinned app may hold end users bound to several creators (each by its first
 * record), and its records before a pin may name others: a creator key sees only what is bound to it.
 */
export function creatorScopeOf(key: ApiKey): string | null {
  return key.scope.kind === "creator" ? key.scope.mozaiksUserId : null;
}
