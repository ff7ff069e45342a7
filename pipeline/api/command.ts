import type { Command } from "../cli/io.ts";
import { EXIT_OK, EXIT_USAGE, withExitCodes } from "../cli/io.ts";
import { keysCommand } from "../cli/keys.ts";
import { createLogger } from "../log.ts";
import { loadServeConfig } from "./config.ts";
import { startServer } from "./serve.ts";

const USAGE = `Usage: agentmeter serve                 the HTTP API and dashboard (docs/api.md)

API keys: agentmeter keys create --scope SCOPE [--name NAME]
(the former spelling 'agentmeter serve keys create' still works and does the same).

Configuration from the environment: AGENTMETER_API_HOST, AGENTMETER_API_PORT, AGENTMETER_API_KEYS,
AGENTMETER_API_MAX_BATCH, AGENTMETER_API_BODY_LIMIT, AGENTMETER_API_SHUTDOWN_MS,
AGENTMETER_API_APP_OWNERS and the pipeline's (AGENTMETER_BILLING_CONFIG for the apps' pinned creators).
`;

/** `agentmeter serve`: runs until SIGTERM or SIGINT, then drains and exits 0. */
export const serveCommand: Command = {
  summary: "the HTTP API (ingest, balances, usage, statements) and the dashboard",
  async run(argv, io) {
    if (argv.includes("--help") || argv.includes("-h")) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    // The former spelling of `agentmeter keys create`, kept working.
    if (argv[0] === "keys") return keysCommand.run(argv.slice(1), io);
    if (argv.length > 0) {
      // serve takes no flags: whoever passes one (--port) means a setting, so say where settings go.
      io.stderr.write(
        `agentmeter serve: unknown argument '${argv[0]}' (configuration is by environment: see README, e.g. AGENTMETER_API_PORT)\n`,
      );
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
    return withExitCodes("serve", io, async () => {
      const server = await startServer(config, logger);
      await server.stopped;
      return EXIT_OK;
    });
  },
};
