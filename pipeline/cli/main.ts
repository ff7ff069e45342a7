import { pathToFileURL } from "node:url";
import { serveCommand } from "../api/command.ts";
import { auditCommand } from "./audit.ts";
import { computeCommand } from "./compute.ts";
import { demoCommand } from "./demo.ts";
import { type Command, EXIT_OK, EXIT_USAGE, type Io, processIo, shownName } from "./io.ts";
import { keysCommand } from "./keys.ts";
import { redriveCommand } from "./redrive.ts";
import { replayCommand } from "./replay.ts";
import { simulateCommand } from "./simulate.ts";

/** Subcommands by name; a new command is one line here. */
const commands: Readonly<Record<string, Command>> = {
  audit: auditCommand,
  compute: computeCommand,
  demo: demoCommand,
  keys: keysCommand,
  redrive: redriveCommand,
  replay: replayCommand,
  serve: serveCommand,
  simulate: simulateCommand,
};

function help(): string {
  const width = Math.max(...Object.keys(commands).map((name) => name.length));
  const list = Object.entries(commands)
    .map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`)
    .join("\n");
  return `Usage: agentmeter <command> [options]\n\nCommands:\n${list}\n\nRun 'agentmeter <command> --help' for a command's options.\n`;
}

export async function main(argv: readonly string[], io: Io = processIo): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    io.stdout.write(help());
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (command === undefined) {
    io.stderr.write(
      `agentmeter: unknown command ${shownName(name)} (commands: ${Object.keys(commands).join(", ")})\n`,
    );
    return EXIT_USAGE;
  }
  return command.run(rest, io);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  process.exitCode = await main(process.argv.slice(2));
}
