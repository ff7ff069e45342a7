import { writeFile } from "node:fs/promises";
import { runReplay } from "../audit/replay.ts";
import { formatSummary, reportJson } from "../audit/report.ts";
import { runAudit } from "../audit/run-audit.ts";
import { createLogger } from "../log.ts";
import {
  cliLogger,
  commandConfig,
  EXIT_DIFFERENCES,
  parseCliOptions,
  progressPrinter,
  usageError,
} from "./audit.ts";
import { type Command, EXIT_OK, type Io, withExitCodes } from "./io.ts";

const USAGE = `Usage: agentmeter replay --suffix NAME [--billing-config FILE]
       agentmeter replay --dry-run [--billing-config FILE] [--suffix NAME] [--report FILE]

Rebuilds state from the input topic into a separate namespace: MongoDB databases
{AGENTMETER_PLATFORM_DB}_NAME, {AGENTMETER_WORKFLOW_DB}_NAME and R_NAME_{app} (never a live name),
ClickHouse database {CLICKHOUSE_DATABASE}_NAME, output topics {topic}.replay.NAME, consumer group
{AGENTMETER_GROUP_ID}.replay.NAME. It runs the processor itself (the same code as live) from the
beginning of the topic until it has caught up with the end captured at start, then stops. Live state is
never written. Check it afterwards with 'agentmeter audit --suffix NAME' (same --billing-config).

  --suffix NAME         the namespace (1-12 lower-case letters or digits)
  --billing-config FILE the billing config to replay with, e.g. a new price book
                        (default AGENTMETER_BILLING_CONFIG)
  --dry-run             write nothing: recompute in memory and print every figure that would change
                        against the live stores (or the --suffix namespace), as audit does
  --report FILE         the dry run's JSON report (default replay-dry-run.json)

Exit codes: 0 done (dry run: nothing would change); 1 dry run: figures would change; 2 bad argument or
config; 3 a store does not answer.`;

async function replay(argv: readonly string[], io: Io): Promise<number> {
  const { values } = parseCliOptions(argv, {
    suffix: { type: "string" },
    "billing-config": { type: "string" },
    "dry-run": { type: "boolean" },
    report: { type: "string", default: "replay-dry-run.json" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const suffix = values.suffix as string | undefined;
  const billingFile = values["billing-config"] as string | undefined;
  if (values["dry-run"] === true) {
    const { config, billing } = commandConfig(suffix, billingFile);
    const report = await runAudit({
      config,
      billing,
      range: { kind: "all" },
      logger: cliLogger(),
      onProgress: progressPrinter(io, "replay --dry-run"),
    });
    const file = values.report as string;
    try {
      await writeFile(file, reportJson(report));
    } catch (error) {
      throw usageError(`--report ${file}: cannot write (${(error as NodeJS.ErrnoException).code ?? error})`);
    }
    io.stdout.write(formatSummary(report, "Dry run: what a replay would change, recomputed"));
    io.stdout.write(`Report: ${file} (${report.differences.length} figures would change)\n`);
    return report.differences.length > 0 ? EXIT_DIFFERENCES : EXIT_OK;
  }
  if (suffix === undefined) throw usageError("--suffix NAME is required (or --dry-run)");
  const { config: live, billing } = commandConfig(undefined, billingFile);
  const started = Date.now();
  let last = 0;
  const result = await runReplay({
    config: live,
    suffix,
    billing,
    // The processor's own service log; quiet unless LOG_LEVEL asks for more.
    logger: createLogger(process.env.LOG_LEVEL ?? "warn", "agentmeter-replay"),
    onProgress: ({ done, total }) => {
      const now = Date.now();
      if (now - last < 1000 && done < total) return;
      last = now;
      const rate = Math.round(done / Math.max(0.001, (now - started) / 1000));
      io.stderr.write(`replay: ${done} / ${total} records committed (${rate}/s)\n`);
    },
  });
  const ns = result.namespace;
  io.stdout.write(
    [
      `Replayed ${ns.AGENTMETER_INPUT_TOPIC} up to ${result.ends.map((end) => `${end.partition}:${end.offset}`).join(",")}`,
      `  MongoDB: ${ns.AGENTMETER_PLATFORM_DB}, ${ns.AGENTMETER_APP_DB_PREFIX}{app}, ${ns.AGENTMETER_WORKFLOW_DB}`,
      `  ClickHouse: ${ns.CLICKHOUSE_DATABASE}`,
      `  records consumed ${result.totals.consumed}, applied ${result.totals.applied}, dead-lettered ${result.totals.deadLettered}, duplicates ${result.totals.duplicates}`,
      `Check it: agentmeter audit --suffix ${suffix}${billingFile === undefined ? "" : ` --billing-config ${billingFile}`}`,
      "",
    ].join("\n"),
  );
  return EXIT_OK;
}

export const replayCommand: Command = {
  summary: "rebuild state from the topic into a suffixed namespace (or --dry-run: show what would change)",
  run: (argv, io) => withExitCodes("replay", io, () => replay(argv, io)),
};
