import { createReadStream } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { isAgentmeterError } from "../../schemas/errors.ts";
import {
  bigintReplacer,
  DEFAULT_MAX_RECORD_BYTES,
  decodeRecord,
  formatIssues,
  priceBookSchema,
} from "../../schemas/index.ts";
import {
  applyBatchInPlace,
  type BillingConfig,
  type BillingState,
  emptyState,
  parseBillingConfig,
  type SequencedOutput,
  type SequencedRecord,
} from "../core/index.ts";
import { buildComputeReport, type ComputeCounts, formatComputeTable } from "./compute-report.ts";
import {
  argsErrorLine,
  type Command,
  EXIT_BAD_INPUT,
  EXIT_OK,
  EXIT_REJECTED,
  EXIT_USAGE,
  type Io,
} from "./io.ts";

const USAGE = `Usage: agentmeter compute [FILE|-] [--format json|table] [--price-book FILE] [--config FILE]

Applies the billing core to JSON Lines records (FILE, or standard input when FILE is - or absent),
with no server, and prints every account's balances, billed amounts, creator earnings, platform
fees and paused chats, plus every output. Money is printed in micro-units (JSON) or currency (table).
Records are read as a stream: memory holds the accounts, not the records or the outputs.

  --format json|table   output format (default json; JSON lists "outputs" first, as they happen)
  --price-book FILE     JSON price book {"entries": [...]} replacing the one in the config
  --config FILE         JSON billing config (fields left out keep their defaults)

On stderr, one line per problem, in input order:
  line N: CODE: reason                      a malformed line (not JSON, invalid record), skipped
  line N: record_id ID: CODE: reason        a record the billing rules rejected (UNKNOWN_MODEL,
                                            RECORD_TOO_LATE, RECORD_OUT_OF_RANGE, ...): no effect
Repeated record_ids are not problems: they are ignored (duplicate_ignored in the outputs).

Exit codes:
  0  computed; every line was a valid record and every record took effect (or was a duplicate)
  1  computed, but some lines were malformed (whether or not records were also rejected)
  2  nothing computed: bad argument, unreadable FILE (missing, a directory, ...), config or price book
  3  computed, no malformed line, but some records were rejected`;

class UsageError extends Error {}

async function readJsonFile(path: string, option: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (error) {
    throw new UsageError(
      `${option} ${path}: cannot read (${(error as NodeJS.ErrnoException).code ?? error})`,
    );
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${option} ${path}: not JSON (${(error as Error).message})`);
  }
}

async function loadConfig(
  configPath: string | undefined,
  priceBookPath: string | undefined,
): Promise<BillingConfig> {
  const configJson = configPath === undefined ? {} : await readJsonFile(configPath, "--config");
  let config: BillingConfig;
  try {
    config = parseBillingConfig(configJson);
  } catch (error) {
    if (isAgentmeterError(error, "CONFIG_INVALID"))
      throw new UsageError(`--config ${configPath}: ${error.message}`);
    throw error;
  }
  if (priceBookPath === undefined) return config;
  const parsed = priceBookSchema.safeParse(await readJsonFile(priceBookPath, "--price-book"));
  if (!parsed.success)
    throw new UsageError(`--price-book ${priceBookPath}: ${formatIssues(parsed.error.issues)}`);
  return { ...config, price_book: parsed.data };
}

type Args = { input: string; format: "json" | "table"; config?: string; priceBook?: string; help: boolean };

function parseComputeArgs(argv: readonly string[]): Args {
  let parsed: ReturnType<typeof parseOptions>;
  try {
    parsed = parseOptions(argv);
  } catch (error) {
    throw new UsageError(argsErrorLine(error, argv));
  }
  const { values, positionals } = parsed;
  if (positionals.length > 1) throw new UsageError(`expected at most one FILE, got ${positionals.length}`);
  if (values.format !== "json" && values.format !== "table") {
    throw new UsageError(`--format must be json or table, got '${values.format}'`);
  }
  return {
    input: positionals[0] ?? "-",
    format: values.format,
    config: values.config,
    priceBook: values["price-book"],
    help: values.help === true,
  };
}

function parseOptions(argv: readonly string[]) {
  return parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      format: { type: "string", default: "json" },
      "price-book": { type: "string" },
      config: { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}

async function openInput(input: string, io: Io): Promise<NodeJS.ReadableStream> {
  if (input === "-") return io.stdin;
  // A directory opens fine and fails on the first read (EISDIR): refuse it before anything is printed.
  let kind: "file" | "directory" | "other";
  try {
    const info = await stat(input);
    kind = info.isDirectory() ? "directory" : info.isFile() ? "file" : "other";
  } catch (error) {
    throw new UsageError(`FILE ${input}: cannot read (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
  if (kind === "directory") throw new UsageError(`FILE ${input}: is a directory, expected a JSON Lines file`);
  const stream = createReadStream(input, "utf8");
  await new Promise<void>((resolve, reject) => {
    stream.once("open", () => resolve());
    stream.once("error", (error: NodeJS.ErrnoException) =>
      reject(new UsageError(`FILE ${input}: cannot read (${error.code ?? error.message})`)),
    );
  });
  return stream;
}

type LinePosition = { line: number };

/** Lines per apply call: bounds the records held at once (a few MB). */
const CHUNK = 20_000;

/**
 * Streams the outputs of a JSON report as they are computed, in the layout JSON.stringify(report, _, 2)
 * would give, with "outputs" as the first key; the rest of the report is written at the end.
 */
class JsonOutputWriter {
  private first = true;
  constructor(private readonly io: Io) {}

  write(output: SequencedOutput<LinePosition>): void {
    if (this.first) this.io.stdout.write('{\n  "outputs": [');
    const json = JSON.stringify(output, bigintReplacer, 2).replaceAll("\n", "\n    ");
    this.io.stdout.write(`${this.first ? "" : ","}\n    ${json}`);
    this.first = false;
  }

  end(rest: object): void {
    this.io.stdout.write(this.first ? '{\n  "outputs": [],' : "\n  ],");
    // `{\n  "accounts": ...\n}` minus its opening brace continues the object begun above.
    this.io.stdout.write(`\n${JSON.stringify(rest, bigintReplacer, 2).slice(2)}\n`);
  }
}

/**
 * Decodes each non-blank line and applies the records in chunks; malformed lines and rejected records
 * are reported on stderr as they are met. Only the accounts and the counts stay in memory.
 */
async function computeStream(
  stream: NodeJS.ReadableStream,
  config: BillingConfig,
  io: Io,
  onOutput: (output: SequencedOutput<LinePosition>) => void,
): Promise<{ state: BillingState; counts: ComputeCounts }> {
  const state = emptyState();
  const counts: ComputeCounts = {
    lines: 0,
    records: 0,
    malformed_lines: 0,
    rejected_records: 0,
    outputs: {},
  };
  let chunk: SequencedRecord<LinePosition>[] = [];
  // Malformed lines of the current chunk, reported at its flush together with its rejected records,
  // so stderr stays in line order.
  let malformed: { line: number; text: string }[] = [];
  let pending = 0;
  const flush = () => {
    // compute keeps one state and reads it only at the end: changed in place, never copied.
    const outputs = applyBatchInPlace(state, chunk, config);
    chunk = [];
    pending = 0;
    let next = 0;
    const reportMalformedBefore = (line: number) => {
      for (; next < malformed.length && malformed[next]!.line < line; next += 1)
        io.stderr.write(malformed[next]!.text);
    };
    for (const output of outputs) {
      counts.outputs[output.kind] = (counts.outputs[output.kind] ?? 0) + 1;
      if (output.kind === "rejected") {
        const line = output.seq?.line ?? 0;
        reportMalformedBefore(line);
        counts.rejected_records += 1;
        io.stderr.write(`line ${line}: record_id ${output.record_id}: ${output.code}: ${output.reason}\n`);
      }
      onOutput(output);
    }
    reportMalformedBefore(Number.POSITIVE_INFINITY);
    malformed = [];
  };
  try {
    for await (const text of createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })) {
      counts.lines += 1;
      // Blank by JSON's whitespace only: trim() would also pass a line of a no-break space, U+2028 or a
      // byte-order mark, which the processor dead-letters as RECORD_NOT_JSON.
      if (/^[ \t\r]*$/.test(text)) continue;
      const decoded = decodeRecord(text, { maxBytes: DEFAULT_MAX_RECORD_BYTES });
      if (decoded.ok) {
        counts.records += 1;
        chunk.push({ record: decoded.record, seq: { line: counts.lines } });
      } else {
        counts.malformed_lines += 1;
        malformed.push({
          line: counts.lines,
          text: `line ${counts.lines}: ${decoded.code}: ${decoded.reason}\n`,
        });
      }
      pending += 1;
      if (pending >= CHUNK) flush();
    }
  } catch (error) {
    throw new UsageError(
      `input: read failed at line ${counts.lines + 1} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`,
    );
  }
  flush();
  return { state, counts };
}

async function compute(argv: readonly string[], io: Io): Promise<number> {
  const args = parseComputeArgs(argv);
  if (args.help) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const config = await loadConfig(args.config, args.priceBook);
  const input = await openInput(args.input, io);
  const json = args.format === "json" ? new JsonOutputWriter(io) : undefined;
  const { state, counts } = await computeStream(input, config, io, (output) => json?.write(output));
  const report = buildComputeReport(state, counts);
  if (json === undefined) io.stdout.write(formatComputeTable(report));
  else json.end(report);
  if (counts.malformed_lines > 0) return EXIT_BAD_INPUT;
  return counts.rejected_records > 0 ? EXIT_REJECTED : EXIT_OK;
}

export const computeCommand: Command = {
  summary: "apply the billing core to JSON Lines records offline and print balances and outputs",
  async run(argv, io) {
    try {
      return await compute(argv, io);
    } catch (error) {
      if (!(error instanceof UsageError)) throw error;
      io.stderr.write(`agentmeter compute: ${error.message}\n`);
      return EXIT_USAGE;
    }
  },
};
