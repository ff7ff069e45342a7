import { randomBytes } from "node:crypto";
import { parseArgs } from "node:util";
import { isAgentmeterError } from "../../schemas/errors.ts";
import { createApiKey, parseScope, scopeText } from "../api/keys.ts";
import { argsErrorLine, type Command, EXIT_OK, EXIT_USAGE, type Io, shownName } from "./io.ts";

const USAGE = `Usage: agentmeter keys create --scope SCOPE [--name NAME]

Makes a new API key for 'agentmeter serve' (docs/api.md). Prints the key once (it is stored nowhere)
and the entry to append to AGENTMETER_API_KEYS (name:sha256hex:scope), which holds only its SHA-256.

  --scope SCOPE   ingest | read | admin | creator:{mozaiks_user_id}
  --name NAME     the key's name in logs and AGENTMETER_API_KEYS, unique there (1-64 chars of
                  A-Z a-z 0-9 _ -); default: the scope and a random suffix, e.g. creator-ada-3f9c1e

Exit codes: 0 printed; 2 bad argument.`;

/**
 * A refusal of the arguments. It names the option and what is wrong, never the value given: an API key
 * (or another secret) pasted into --name or --scope would otherwise land in the terminal, its scrollback
 * and any CI log, as the API's AGENTMETER_API_KEYS errors avoid (pipeline/api/keys.ts).
 */
class UsageError extends Error {}

/** Options whose values are never echoed: either may hold a key pasted in the wrong place. */
const SECRET_OPTIONS = ["--scope", "--name"];

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
    throw new UsageError(argsErrorLine(error, argv, {}, SECRET_OPTIONS));
  }
  if (values.scope === undefined) throw new UsageError("--scope is required");
  const scope = parseScope(values.scope);
  if (scope === undefined)
    throw new UsageError(
      "--scope is invalid (the value is not shown): use ingest, read, admin or creator:{mozaiks_user_id}",
    );
  const name = values.name ?? defaultName(scopeText(scope));
  let made: ReturnType<typeof createApiKey>;
  try {
    made = createApiKey(name, scope);
  } catch (error) {
    // createApiKey's reasons name the rule broken, never the name itself.
    if (!isAgentmeterError(error, "CLI_USAGE")) throw error;
    throw new UsageError(`--name is invalid (the value is not shown): ${error.message}`);
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
      io.stderr.write(`agentmeter keys: unknown action ${shownName(action)} (actions: create)\n${USAGE}\n`);
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
