/** Where a command reads and writes, so tests can run commands in-process with fake streams. */
export type Io = {
  stdin: NodeJS.ReadableStream;
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
};

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

/**
 * node:util parseArgs' error as one line. Its words for `--records -1` (a value that starts with '-')
 * run to three lines about a forgotten value; this names the option and the value instead, with what
 * the option expects when the command says (`expected`, by option: "a whole number from 1 to 10").
 */
export function argsErrorLine(
  error: unknown,
  argv: readonly string[],
  expected: Readonly<Record<string, string>> = {},
): string {
  const message = error instanceof Error ? error.message : String(error);
  const option = /^Option '(?:-[^-], )?(--[^' ]+)' argument is ambiguous/.exec(message)?.[1];
  const at = argv.findIndex((arg, index) => arg === option && argv[index + 1]?.startsWith("-"));
  if (option === undefined || at < 0) return message.split("\n")[0]!;
  const value = argv[at + 1]!;
  const shown = `${option} ${JSON.stringify(value)}`;
  const wanted = expected[option];
  return wanted === undefined
    ? `${shown}: a value that starts with '-' is written ${option}=${value}`
    : `${shown} is invalid: expected ${wanted}`;
}
