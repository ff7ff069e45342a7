import type { FastifyRequest } from "fastify";
import { type ApiKey, findKey, type Scope } from "./keys.ts";
import { ApiProblem, notFound } from "./problem.ts";

/** What a route needs of its caller's key. */
export type Access = "ingest" | "read";

/**
 * The key of an `Authorization: Bearer <key>` header, or undefined for any other scheme or no key. The
 * scheme is matched in any case: auth schemes are case-insensitive (RFC 7235 2.1).
 */
function bearerKey(header: string): string | undefined {
  const text = header.trim();
  const gap = text.search(/\s/);
  if (gap === -1 || text.slice(0, gap).toLowerCase() !== "bearer") return undefined;
  const key = text.slice(gap).trim();
  return key === "" ? undefined : key;
}

/**
 * The presented key: a bearer key, else X-API-Key. Without one, 401 saying why: a caller whose
 * Authorization header is there but not a bearer key learns that, not that a key is missing.
 */
function presentedSecret(request: FastifyRequest): string {
  const header = request.headers.authorization;
  const bearer = typeof header === "string" ? bearerKey(header) : undefined;
  if (bearer !== undefined) return bearer;
  const apiKey = request.headers["x-api-key"];
  if (typeof apiKey === "string" && apiKey.trim() !== "") return apiKey.trim();
  if (header !== undefined)
    throw new ApiProblem(
      "UNAUTHENTICATED",
      "the Authorization header is not a bearer key: send Authorization: Bearer <key>",
    );
  throw new ApiProblem("UNAUTHENTICATED", "an API key is required (Authorization: Bearer <key>)");
}

/** The caller's key, or 401; a key without the access the route needs, 403. */
export function authenticate(keys: readonly ApiKey[], request: FastifyRequest, access: Access): ApiKey {
  const key = findKey(keys, presentedSecret(request));
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
 * Whether the key may see what belongs to this creator (null: a resource no creator owns, e.g. an
 * unpinned app under AGENTMETER_API_APP_OWNERS=pinned). Only creator keys are bound to a creator: read
 * and admin keys see every creator's and none's. A creator's key asking for another's is answered
 * exactly as for something that does not exist (404), so it learns nothing about it.
 */
export function requireCreator(key: ApiKey, mozaiksUserId: string | null, what: string): void {
  if (key.scope.kind !== "creator") return;
  if (key.scope.mozaiksUserId !== mozaiksUserId) throw notFound(what);
}

/**
 * The creator whose records a key may see of an app it may read: its own for a creator key, null (all)
 * for read and admin keys. An unpinned app may hold end users bound to several creators (each by its first
 * record), and its records before a pin may name others: a creator key sees only what is bound to it.
 */
export function creatorScopeOf(key: ApiKey): string | null {
  return key.scope.kind === "creator" ? key.scope.mozaiksUserId : null;
}
