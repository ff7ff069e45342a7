import { createReadStream } from "node:fs";
import { readFile } from "node:fs/promises";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import {
  bigintReplacer,
  DEFAULT_MAX_RECORD_BYTES,
  decodeRecord,
  formatIssues,
  priceBookSchema,
} from "../../schemas/index.ts";
import {
  applyBatch,
  type BillingConfig,
  emptyState,
  parseBillingConfig,
  type SequencedRecord,
} from "../core/index.ts";
import { isAgentmeterError } from "../errors.ts";
import { type Command, EXIT_BAD_INPUT, EXIT_OK, EXIT_USAGE, type Io } from "./io.ts";
import { buildReport } from "./report.ts";
import { formatReportTable } from "./table.ts";

const USAGE = `Usage: agentmeter compute [FILE|-] [--format json|table] [--price-book FILE] [--config FILE]

Applies the billing core to JSON Lines records (FILE, or standard input when FILE is - or absent),
with no server, and prints every account's balances, billed amounts, creator earnings, platform
fees and paused chats, plus every output. Money is printed in micro-units (JSON) or currency (table).

  --format json|table   output format (default json)
  --price-book FILE     JSON price book {"entries": [...]} replacing the one in the config
  --config FILE         JSON billing config (fields left out keep their defaults)

Exit codes: 0 ok; 1 computed, but some lines were malformed (each reported on stderr);
2 bad argument, config or price book.`;

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
    throw new UsageError((error as Error).message);
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

/** Decodes each non-blank line; malformed ones are reported on stderr and skipped. */
async function readRecords(stream: NodeJS.ReadableStream, io: Io) {
  const records: SequencedRecord<LinePosition>[] = [];
  let lines = 0;
  let malformed = 0;
  for await (const text of createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })) {
    lines += 1;
    if (text.trim() === "") continue;
    const decoded = decodeRecord(text, { maxBytes: DEFAULT_MAX_RECORD_BYTES });
    if (decoded.ok) {
      records.push({ record: decoded.record, seq: { line: lines } });
    } else {
      malformed += 1;
      io.stderr.write(`line ${lines}: ${decoded.code}: ${decoded.reason}\n`);
    }
  }
  return { records, lines, malformed };
}

async function compute(argv: readonly string[], io: Io): Promise<number> {
  const args = parseComputeArgs(argv);
  if (args.help) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const config = await loadConfig(args.config, args.priceBook);
  const { records, lines, malformed } = await readRecords(await openInput(args.input, io), io);
  const { state, outputs } = applyBatch(emptyState(), records, config);
  const report = buildReport(state, outputs, { lines, records: records.length, malformed_lines: malformed });
  io.stdout.write(
    args.format === "table" ? formatReportTable(report) : `${JSON.stringify(report, bigintReplacer, 2)}\n`,
  );
  return malformed > 0 ? EXIT_BAD_INPUT : EXIT_OK;
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
