import { isAgentmeterError } from "../../schemas/errors.ts";
import { redactText } from "../auth/redact.ts";

/** Where a command reads and writes, so tests can run commands in-process with fake streams. */
export type Io = {
  stdin: NodeJS.ReadableStream;
  stdout: { write(text: string): unknown };
  /** `isTTY` as on process.stderr: true on a terminal, absent otherwise. */
  stderr: { write(text: string): unknown; isTTY?: boolean };
};

/**
 * A progress line on standard error. On a terminal it is rewritten in place (a carriage return before
 * each); anywhere else (a CI log, a file, a pipe) carriage returns would run every update into one
 * line, so each update is a line of its own, at most one every `everyMs` and always the last.
 */
export function progressLine(
  stderr: Io["stderr"],
  everyMs = 5_000,
): { update(text: string): void; end(text?: string): void } {
  const terminal = stderr.isTTY === true;
  let lastAt = Number.NEGATIVE_INFINITY;
  let pending: string | undefined;
  return {
    update(text) {
      if (terminal) {
        stderr.write(`\r${text}`);
        return;
      }
      const now = Date.now();
      if (now - lastAt < everyMs) {
        pending = text;
        return;
      }
      lastAt = now;
      pending = undefined;
      stderr.write(`${text}\n`);
    },
    /** Ends the line: with `text` as its last state, else with the last update not yet shown. */
    end(text) {
      const last = text ?? pending;
      pending = undefined;
      if (terminal) stderr.write(last === undefined ? "\n" : `\r${last}\n`);
      else if (last !== undefined) stderr.write(`${last}\n`);
    },
  };
}

export const processIo: Io = { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr };

export type Command = {
  /** One line for `agentmeter --help`. */
  summary: string;
  run(argv: readonly string[], io: Io): Promise<number>;
};

/**
 * Exit codes: 0 ok, 1 done but some input was bad, 2 bad command line or config (nothing done),
 * 3 done, every line valid, but some records were rejected by the billing rules (`compute`).
 */
export const EXIT_OK = 0;
export const EXIT_BAD_INPUT = 1;
export const EXIT_USAGE = 2;
export const EXIT_REJECTED = 3;
/** A server a command needs did not answer (audit, redrive, replay, demo, simulate, serve). */
export const EXIT_UNREACHABLE = 3;

/**
 * node:util parseArgs' error as one line. Its words for `--records -1` (a value that starts with '-')
 * run to three lines about a forgotten value; this names the option and the value instead, with what
 * the option expects when the command says (`expected`, by option: "a whole number from 1 to 10").
 * Options in `secret` (a key or password may be pasted there by mistake) are named, their values never
 * shown; nor is a stray positional argument (a key pasted without its option).
 */
export function argsErrorLine(
  error: unknown,
  argv: readonly string[],
  expected: Readonly<Record<string, string>> = {},
  secret: readonly string[] = [],
): string {
  const message = error instanceof Error ? error.message : String(error);
  // parseArgs' line quotes the argument, which may be a key pasted without its option.
  if ((error as { code?: unknown } | null)?.code === "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL")
    return "an argument is neither an option nor an option's value (not shown, in case it is a key or password): this command takes no positional arguments";
  // parseArgs' own line runs on about positional arguments and quotes the option unbalanced.
  const unknown = /^Unknown option '([^']*)'/.exec(message)?.[1];
  if (unknown !== undefined) return `unknown option ${shownName(unknown)} (--help lists the options)`;
  const option = /^Option '(?:-[^-], )?(--[^' ]+)' argument is ambiguous/.exec(message)?.[1];
  const at = argv.findIndex((arg, index) => arg === option && argv[index + 1]?.startsWith("-"));
  if (option === undefined || at < 0) return message.split("\n")[0]!;
  const value = argv[at + 1]!;
  const wanted = expected[option];
  if (secret.includes(option))
    return wanted === undefined
      ? `${option}: its value starts with '-', so it is written ${option}=VALUE (the value is not shown)`
      : `${option} is invalid: expected ${wanted} (the value is not shown)`;
  const shown = `${option} ${JSON.stringify(value)}`;
  return wanted === undefined
    ? `${shown}: a value that starts with '-' is written ${option}=${value}`
    : `${shown} is invalid: expected ${wanted}`;
}

/**
 * A command or action name as typed, for an "unknown ..." line: quoted when it reads as a name (lower-case
 * letters and '-'), else withheld, since a key or password pasted in its place would be printed.
 */
export function shownName(text: string): string {
  return /^-{0,2}[a-z][a-z-]{0,39}$/.test(text) ? `'${text}'` : "(not shown: it is not a name)";
}

/**
 * Maps the typed errors of the commands that reach servers to their exit codes, one line on stderr each:
 * a bad argument or configuration 2, a server that does not answer 3 (reach.ts names it), or stops
 * answering mid-run (a send that failed past its retries) 3. Other errors (bugs) keep their stack.
 */
export async function withExitCodes(name: string, io: Io, action: () => Promise<number>): Promise<number> {
  try {
    return await action();
  } catch (error) {
    if (isAgentmeterError(error, "CLI_USAGE") || isAgentmeterError(error, "CONFIG_INVALID")) {
      io.stderr.write(`agentmeter ${name}: ${redactText(error.message)}\n`);
      return EXIT_USAGE;
    }
    const refused = driverRefusal(error);
    if (refused !== undefined) {
      io.stderr.write(`agentmeter ${name}: ${redactText(refused)}\n`);
      return EXIT_USAGE;
    }
    // PRODUCE_FAILED: the brokers stopped answering mid-run (a send past its retries).
    if (isAgentmeterError(error, "SERVICE_UNAVAILABLE") || isAgentmeterError(error, "PRODUCE_FAILED")) {
      // The driver's own message may quote the address it was given, credentials and all.
      io.stderr.write(`agentmeter ${name}: ${redactText(error.message)}\n`);
      return EXIT_UNREACHABLE;
    }
    throw error;
  }
}

/**
 * A connection string the configuration's check took but a driver refuses when its client is made (an
 * empty user name, an option it does not know): a configuration error, named by its variable.
 */
function driverRefusal(error: unknown): string | undefined {
  const { name, message } = (error ?? {}) as { name?: unknown; message?: unknown };
  if (typeof message !== "string") return undefined;
  if (name === "MongoParseError" || name === "MongoAPIError" || name === "MongoInvalidArgumentError")
    return `config: MONGODB_URI is not accepted by the MongoDB driver: ${message}`;
  if (/^Unknown URL parameters/.test(message))
    return `config: CLICKHOUSE_URL is not accepted by the ClickHouse client: ${message}`;
  return undefined;
}
