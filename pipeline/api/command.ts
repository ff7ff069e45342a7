import type { Command, Io } from "../cli/io.ts";
import { EXIT_OK, EXIT_USAGE } from "../cli/io.ts";
import { createLogger } from "../log.ts";
import { loadServeConfig } from "./config.ts";
import { createApiKey, parseScope } from "./keys.ts";
import { startServer } from "./serve.ts";

const USAGE = `Usage: agentmeter serve                 the HTTP API and dashboard (docs/api.md)
       agentmeter serve keys create --name NAME --scope SCOPE
                                        a new API key; SCOPE: ingest | read | admin | creator:{mozaiks_user_id}

Configuration from the environment: AGENTMETER_API_HOST, AGENTMETER_API_PORT, AGENTMETER_API_KEYS,
AGENTMETER_API_MAX_BATCH, AGENTMETER_API_BODY_LIMIT, AGENTMETER_API_SHUTDOWN_MS and the pipeline's.
`;

function optionOf(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  return at < 0 ? undefined : argv[at + 1];
}

function createKey(argv: readonly string[], io: Io): number {
  const name = optionOf(argv, "--name");
  const scope = parseScope(optionOf(argv, "--scope") ?? "");
  if (name === undefined || scope === undefined) {
    io.stderr.write(USAGE);
    return EXIT_USAGE;
  }
  const { secret, entry } = createApiKey(name, scope);
  io.stdout.write(
    `key (give it to its holder; it is not stored anywhere and cannot be shown again):\n  ${secret}\n` +
      `append to AGENTMETER_API_KEYS (comma-separated):\n  ${entry}\n`,
  );
  return EXIT_OK;
}

/** `agentmeter serve`: runs until SIGTERM or SIGINT, then drains and exits 0. */
export const serveCommand: Command = {
  summary: "the HTTP API (ingest, balances, usage, statements) and the dashboard",
  async run(argv, io) {
    if (argv.includes("--help") || argv.includes("-h")) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    if (argv[0] === "keys" && argv[1] === "create") {
      try {
        return createKey(argv.slice(2), io);
      } catch (error) {
        io.stderr.write(`agentmeter serve: ${(error as Error).message}\n`);
        return EXIT_USAGE;
      }
    }
    if (argv.length > 0) {
      io.stderr.write(USAGE);
      return EXIT_USAGE;
    }
    let config: ReturnType<typeof loadServeConfig>;
    try {
      config = loadServeConfig();
    } catch (error) {
      io.stderr.write(`agentmeter serve: ${(error as Error).message}\n`);
      return EXIT_USAGE;
    }
    const logger = createLogger(config.pipeline.LOG_LEVEL, "agentmeter-api");
    const server = await startServer(config, logger);
    await server.stopped;
    return EXIT_OK;
  },
};
