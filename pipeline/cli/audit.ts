import { constants } from "node:fs";
import { access, stat, writeFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { type ParseArgsConfig, parseArgs } from "node:util";
import { AgentmeterError } from "../../schemas/errors.ts";
import { epochMs, isoDateTimeSchema } from "../../schemas/time.ts";
import { suffixedConfig } from "../audit/namespace.ts";
import { parseOffsetSpec, type RangeRequest } from "../audit/range.ts";
import { formatSummary, reportJson } from "../audit/report.ts";
import { runAudit } from "../audit/run-audit.ts";
import type { ReadProgress } from "../audit/topic-reader.ts";
import { auditWorkers } from "../audit/workers.ts";
import { type Config, loadConfig } from "../config.ts";
import type { BillingConfig } from "../core/index.ts";
import { createLogger } from "../log.ts";
import { loadBillingConfig } from "../runtime/billing-config.ts";
import { argsErrorLine, type Command, EXIT_OK, type Io, withExitCodes } from "./io.ts";

/** Exit codes of audit and replay: 0 no difference, 1 differences, 2 usage or config, 3 a store does not answer. */
export const EXIT_DIFFERENCES = 1;

const USAGE = `Usage: agentmeter audit [--from-time TIME | --from-offset SPEC] [--to-offset SPEC]
                       [--report FILE] [--suffix NAME] [--billing-config FILE] [--workers N]

Reads the input topic (AGENTMETER_INPUT_TOPIC) up to its end as it stands at start, recomputes every
figure with the billing core, and compares with MongoDB (every account: balances, trial counter, paid
tokens, billed, creator share, platform fee, paused chats; every app's revenue ledgers) and ClickHouse
(per app and level: records, tokens, cost, billed, creator share, platform fee, in usage_events FINAL and
in the hourly and per-minute rollups). Never writes to the stores. Prints a summary and writes a JSON
report listing every difference with the records that explain it.

  --from-time TIME      start at the first record at or after TIME (ISO 8601 with a zone, or epoch ms): delta audit
  --from-offset SPEC    start at these offsets: N (every partition) or P:N,P:N: delta audit
  --to-offset SPEC      stop before these offsets (default: the end at start)
  --report FILE         where to write the JSON report (default audit-report.json)
  --suffix NAME         audit the namespace written by 'agentmeter replay --suffix NAME'
  --billing-config FILE billing config to recompute with (default AGENTMETER_BILLING_CONFIG)
  --workers N           worker threads recomputing, partitions shared out; 0 = the main thread
                        (default AGENTMETER_AUDIT_WORKERS, else one per core); same report for any N

Only an audit of the whole topic compares balances and totals; a range compares the ClickHouse rows of
its offsets (records, tokens, cost). A topic deleted and created again (incarnation N in AgentmeterTopics)
is compared with the rows stored as TOPIC~N only, as a range: the history before it is in no log. See
docs/audit.md. Configuration from the environment, as the processor's (KAFKA_BROKERS, MONGODB_URI,
CLICKHOUSE_URL, ...).

Exit codes: 0 no difference; 1 differences found; 2 bad argument or config; 3 a store does not answer.`;

export function usageError(message: string): AgentmeterError {
  return new AgentmeterError("CLI_USAGE", message);
}

/**
 * The report is written at the end of an audit that may read for hours: a directory that does not exist
 * or cannot be written is said before it starts, not after.
 */
async function checkWritable(file: string): Promise<void> {
  const dir = dirname(resolve(file));
  let problem: string | undefined;
  try {
    if ((await stat(dir)).isDirectory()) await access(dir, constants.W_OK);
    else problem = "ENOTDIR";
  } catch (error) {
    problem = (error as NodeJS.ErrnoException).code ?? String(error);
  }
  if (problem !== undefined) throw usageError(`--report ${file}: cannot write in ${dir} (${problem})`);
}

/**
 * Epoch milliseconds, or an ISO 8601 time with a zone as a record's `occurred_at` is written: Date.parse
 * alone would take "March 7" (as 2001), "2025-07" and times without a zone (as local time), and roll
 * 2025-02-30 over to March, and the audit would start somewhere else than asked, without a word.
 */
function parseTime(text: string): number {
  if (/^[0-9]{1,15}$/.test(text)) return Number(text);
  if (!isoDateTimeSchema.safeParse(text).success)
    throw usageError(
      `--from-time '${text}' is not epoch milliseconds or an ISO 8601 time with a zone (e.g. 2026-11-01T00:00:00Z)`,
    );
  const ms = epochMs(text);
  // Kafka reads a negative timestamp as "latest" (-1) or "earliest" (-2), or refuses it: a time before
  // the epoch would audit nothing, or fail, as if it were a time.
  if (ms < 0)
    throw usageError(
      `--from-time '${text}' is before 1970-01-01T00:00:00Z: no record is older (every record's time is from 1970 on)`,
    );
  return ms;
}

type OptionValues = Record<string, string | boolean | undefined>;

/** node:util parseArgs, with its error (unknown option, missing value) as a usage error naming the option. */
export function parseCliOptions(
  argv: readonly string[],
  options: NonNullable<ParseArgsConfig["options"]>,
): { values: OptionValues } {
  try {
    const { values } = parseArgs({ args: [...argv], allowPositionals: false, strict: true, options });
    return { values: values as OptionValues };
  } catch (error) {
    throw usageError(argsErrorLine(error, argv));
  }
}

/** The environment's config, or a replay namespace of it; the billing config from a file or the environment. */
export function commandConfig(
  suffix: string | undefined,
  billingFile: string | undefined,
): {
  config: Config;
  billing: BillingConfig;
} {
  const live = loadConfig(process.env);
  const config = suffix === undefined ? live : suffixedConfig(live, suffix);
  const billing = loadBillingConfig(
    billingFile === undefined ? config : { ...config, AGENTMETER_BILLING_CONFIG: billingFile },
  );
  return { config, billing };
}

/** Seconds as `42s` or `3m07s`. */
function duration(seconds: number): string {
  const whole = Math.max(0, Math.round(seconds));
  if (whole < 60) return `${whole}s`;
  return `${Math.floor(whole / 60)}m${String(whole % 60).padStart(2, "0")}s`;
}

/**
 * Progress lines on stderr at most once a second (`every` ms): records read and recomputed of the
 * total, the rate since the start, and the time left at that rate; the last line says how long it took.
 */
export function progressPrinter(
  io: Pick<Io, "stderr">,
  label: string,
  every = 1000,
  clock: () => number = Date.now,
): (progress: ReadProgress) => void {
  const started = clock();
  let last = 0;
  return ({ read, total, done }) => {
    const now = clock();
    if (now - last < every && done !== true) return;
    last = now;
    const seconds = Math.max(0.001, (now - started) / 1000);
    const rate = read / seconds;
    const tail =
      done === true
        ? `done in ${duration(seconds)}`
        : rate > 0
          ? `ETA ${duration(Math.max(0, total - read) / rate)}`
          : "ETA -";
    io.stderr.write(`${label}: ${read} / ${total} records (${Math.round(rate)}/s, ${tail})\n`);
  };
}

/** Kafka's client logs go nowhere unless asked for: the CLI's stdout is the summary. */
export function cliLogger() {
  return createLogger(process.env.LOG_LEVEL ?? "error", "agentmeter-cli");
}

function rangeRequest(values: OptionValues): RangeRequest {
  const fromTime = values["from-time"] as string | undefined;
  const fromOffset = values["from-offset"] as string | undefined;
  const toOffset = values["to-offset"] as string | undefined;
  if (fromTime !== undefined && fromOffset !== undefined)
    throw usageError("--from-time and --from-offset cannot be used together");
  if (fromTime !== undefined) {
    if (toOffset !== undefined) throw usageError("--to-offset goes with --from-offset, not --from-time");
    return { kind: "time", fromMs: parseTime(fromTime) };
  }
  if (fromOffset === undefined && toOffset === undefined) return { kind: "all" };
  return {
    kind: "offsets",
    from: fromOffset === undefined ? undefined : parseOffsetSpec(fromOffset, "--from-offset"),
    to: toOffset === undefined ? undefined : parseOffsetSpec(toOffset, "--to-offset"),
  };
}

async function audit(argv: readonly string[], io: Io): Promise<number> {
  const { values } = parseCliOptions(argv, {
    "from-time": { type: "string" },
    "from-offset": { type: "string" },
    "to-offset": { type: "string" },
    report: { type: "string", default: "audit-report.json" },
    suffix: { type: "string" },
    "billing-config": { type: "string" },
    workers: { type: "string" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const range = rangeRequest(values);
  const workers = auditWorkers(values.workers as string | undefined);
  const file = values.report as string;
  await checkWritable(file);
  const { config, billing } = commandConfig(
    values.suffix as string | undefined,
    values["billing-config"] as string | undefined,
  );
  const report = await runAudit({
    config,
    billing,
    range,
    logger: cliLogger(),
    onProgress: progressPrinter(io, "audit"),
    workers,
  });
  try {
    await writeFile(file, reportJson(report));
  } catch (error) {
    throw usageError(`--report ${file}: cannot write (${(error as NodeJS.ErrnoException).code ?? error})`);
  }
  io.stdout.write(formatSummary(report));
  io.stdout.write(`Report: ${file} (${report.differences.length} differences)\n`);
  return report.differences.length > 0 ? EXIT_DIFFERENCES : EXIT_OK;
}

export const auditCommand: Command = {
  summary: "recompute every figure from the topic and diff it against MongoDB and ClickHouse (read-only)",
  run: (argv, io) => withExitCodes("audit", io, () => audit(argv, io)),
};
