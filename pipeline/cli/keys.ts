import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { createApiKey, parseScope, scopeText } from "../api/keys.ts";
import { argsErrorLine, type Command, EXIT_OK, EXIT_USAGE, type Io } from "./io.ts";

const USAGE = `Usage: agentmeter keys create --scope SCOPE [--name NAME]

Makes a new API key for 'agentmeter serve' (docs/api.md). Prints the key once (it is stored nowhere)
and the entry to append to AGENTMETER_API_KEYS (name:sha256hex:scope), which holds only its SHA-256.

  --scope SCOPE   ingest | read | admin | creator:{mozaiks_user_id}
  --name NAME     the key's name in logs and AGENTMETER_API_KEYS, unique there (1-64 chars of
                  A-Z a-z 0-9 _ -); default: the scope and a random suffix, e.g. creator-ada-3f9c1e

Exit codes: 0 printed; 2 bad argument.`;

class UsageError extends Error {}

function defaultName(scope: string): string {
  return `${scope.replace(":", "-").slice(0, 57)}-${randomBytes(3).toString("hex")}`;
}

function createKey(argv: readonly string[], io: Io): number {
  let values: { scope?: string; name?: string };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { scope: { type: "string" }, name: { type: "string" } },
    }));
  } catch (error) {
    throw new UsageError(argsErrorLine(error, argv));
  }
  if (values.scope === undefined) throw new UsageError("--scope is required");
  const scope = parseScope(values.scope);
  if (scope === undefined)
    throw new UsageError(
      `--scope ${values.scope} is not a scope: use ingest, read, admin or creator:{mozaiks_user_id}`,
    );
  const name = values.name ?? defaultName(scopeText(scope));
  let made: ReturnType<typeof createApiKey>;
  try {
    made = createApiKey(name, scope);
  } catch (error) {
    throw new UsageError(`--name ${name}: ${(error as Error).message}`);
  }
  io.stdout.write(
    `key '${name}' with scope ${scopeText(scope)} (give it to its holder; it is not stored anywhere and cannot be shown again):\n` +
      `  ${made.secret}\n` +
      `append to AGENTMETER_API_KEYS (comma-separated):\n  ${made.entry}\n`,
  );
  return EXIT_OK;
}

/** `agentmeter keys create`: a new API key for the HTTP API. */
export const keysCommand: Command = {
  summary: "create an API key for 'agentmeter serve' (keys create --scope ...)",
  async run(argv, io) {
    const [action, ...rest] = argv;
    if (action === undefined) {
      io.stderr.write(`${USAGE}\n`);
      return EXIT_USAGE;
    }
    if (action === "--help" || action === "-h" || rest.includes("--help") || rest.includes("-h")) {
      io.stdout.write(`${USAGE}\n`);
      return EXIT_OK;
    }
    if (action !== "create") {
      io.stderr.write(`agentmeter keys: unknown action '${action}' (actions: create)\n${USAGE}\n`);
      return EXIT_USAGE;
    }
    try {
      return createKey(rest, io);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      io.stderr.write(`agentmeter keys create: ${error.message}\n`);
      return EXIT_USAGE;
    }
  },
};
