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
