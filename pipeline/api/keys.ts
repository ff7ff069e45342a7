import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { AgentmeterError } from "../../schemas/errors.ts";
import { USER_ID_PATTERN } from "../../schemas/ids.ts";

/**
 * API keys. The server holds only each key's SHA-256 (a key is 32 random bytes, so a plain hash is
 * enough: there is nothing to brute-force), in AGENTMETER_API_KEYS as `name:sha256hex:scope` entries
 * separated by commas. Scopes:
 * - `ingest`: POST /v1/records (usage and session records);
 * - `read`: every read route, every creator;
 * - `admin`: everything, credit records included;
 * - `creator:{mozaiks_user_id}`: reads of that creator's apps, their end users and statements only.
 */
export type Scope =
  | { kind: "ingest" }
  | { kind: "read" }
  | { kind: "admin" }
  | { kind: "creator"; mozaiksUserId: string };

export interface ApiKey {
  name: string;
  scope: Scope;
  /** SHA-256 of the secret. */
  hash: Buffer;
}

const KEY_PREFIX = "amk_";
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export function parseScope(text: string): Scope | undefined {
  if (text === "ingest" || text === "read" || text === "admin") return { kind: text };
  if (text.startsWith("creator:")) {
    const id = text.slice("creator:".length);
    if (USER_ID_PATTERN.test(id)) return { kind: "creator", mozaiksUserId: id };
  }
  return undefined;
}

export function scopeText(scope: Scope): string {
  return scope.kind === "creator" ? `creator:${scope.mozaiksUserId}` : scope.kind;
}

export function hashSecret(secret: string): Buffer {
  return createHash("sha256").update(secret, "utf8").digest();
}

/**
 * Why a key name is refused, or undefined. A name starting with the key prefix is a key pasted where its
 * entry belongs (a base64url key is otherwise a valid name): refused, so it never shows in a message.
 */
function nameProblem(name: string): string | undefined {
  if (!NAME_PATTERN.test(name)) return "the name must be 1-64 chars of A-Z a-z 0-9 _ -";
  if (name.startsWith(KEY_PREFIX))
    return `the name starts with ${KEY_PREFIX}, as an API key does: give the entry that agentmeter keys create printed, never the key itself`;
  return undefined;
}

/**
 * Parses AGENTMETER_API_KEYS; an error names the entry by position, and by name only when the name is
 * valid (so never a key pasted in its place), never its hash.
 */
export function parseApiKeys(text: string): ApiKey[] {
  const entries = text
    .split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.length > 0);
  const keys: ApiKey[] = [];
  entries.forEach((entry, index) => {
    const [name = "", hash = "", ...scopeParts] = entry.split(":");
    const scope = parseScope(scopeParts.join(":"));
    const badName = nameProblem(name);
    const bad = (why: string) =>
      new AgentmeterError(
        "CONFIG_INVALID",
        `config: AGENTMETER_API_KEYS entry ${index + 1}${badName === undefined ? ` (${name})` : ""} is invalid: ${why}; expected name:sha256hex:scope`,
        { details: { variable: "AGENTMETER_API_KEYS" } },
      );
    if (badName !== undefined) throw bad(badName);
    if (!/^[0-9a-f]{64}$/.test(hash)) throw bad("the hash must be 64 lower-case hex digits (SHA-256)");
    if (scope === undefined) throw bad("the scope must be ingest, read, admin or creator:{mozaiks_user_id}");
    if (keys.some((key) => key.name === name)) throw bad("the name is used twice");
    keys.push({ name, scope, hash: Buffer.from(hash, "hex") });
  });
  return keys;
}

/** A new key: the secret to hand out once, and the entry to append to AGENTMETER_API_KEYS. */
export function createApiKey(name: string, scope: Scope): { secret: string; entry: string } {
  const badName = nameProblem(name);
  if (badName !== undefined) throw new AgentmeterError("CLI_USAGE", badName);
  const secret = `${KEY_PREFIX}${randomBytes(32).toString("base64url")}`;
  return { secret, entry: `${name}:${hashSecret(secret).toString("hex")}:${scopeText(scope)}` };
}

/**
 * The key whose hash matches the presented secret, compared in constant time against every key (no
 * early exit), so the answer's timing says nothing about which key, or how much of one, matched.
 */
export function findKey(keys: readonly ApiKey[], secret: string): ApiKey | undefined {
  const presented = hashSecret(secret);
  let found: ApiKey | undefined;
  for (const key of keys) {
    if (timingSafeEqual(key.hash, presented) && found === undefined) found = key;
  }
  return found;
}
