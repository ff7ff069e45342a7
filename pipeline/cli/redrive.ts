import { ERROR_CODES, type ErrorCode } from "../../schemas/errors.ts";
import { parseOffsetSpec, type RangeRequest } from "../audit/range.ts";
import { loadConfig } from "../config.ts";
import { createKafka } from "../kafka.ts";
import { type RedriveResult, redrive } from "../ops/redrive.ts";
import { reach } from "../runtime/reach.ts";
import { cliLogger, parseCliOptions, progressPrinter, usageError } from "./audit.ts";
import { type Command, EXIT_OK, type Io, withExitCodes } from "./io.ts";

const USAGE = `Usage: agentmeter redrive --reason CODE[,CODE...] [--rekey] [--from-offset SPEC] [--to-offset SPEC]
                         [--dry-run]

Reads the dead-letter topic (AGENTMETER_DLQ_TOPIC) up to its end as it stands at start and sends the
original bytes of every dead letter with one of these reason codes back to the input topic
(AGENTMETER_INPUT_TOPIC), once the cause is fixed: a producer's partitioner (RECORD_WRONG_PARTITION), a
document repaired (DOCUMENT_INVALID), a store limit raised (RECORD_STORE_REJECTED). Each record keeps its
key and bytes and gains two headers, agentmeter-redriven-from (topic/partition/offset of its dead letter)
and agentmeter-redriven-reason. The processor takes them like any record: one applied before is a
duplicate by its record_id, so running this twice bills nothing twice (within the dedupe horizon).
Credits are never re-driven (their operator signature is a header the dead letter does not keep: send
them again signed), nor ticks, nor records ClickHouse holds a row for at their input position (their
flush landed in part: re-driven, they would be counted twice; the audit names them).

  --reason CODES        the reason codes to re-drive, comma-separated (required)
  --rekey               key each record by its account (the key the processor expects) instead of the
                        key it was sent with: for RECORD_KEY_MISMATCH from a producer with a wrong key
  --from-offset SPEC    start at these offsets of the dead-letter topic: N (every partition) or P:N,P:N
                        (default: the beginning; a run prints where the next one can start)
  --to-offset SPEC      stop before these offsets (default: the end at start)
  --dry-run             send nothing: count what would be re-driven and what would be skipped

Configuration from the environment, as the processor's (KAFKA_BROKERS, AGENTMETER_DLQ_TOPIC,
CLICKHOUSE_URL, ...).

Exit codes: 0 done; 2 bad argument or config; 3 Kafka or ClickHouse does not answer.`;

function parseReasons(text: string | undefined): Set<ErrorCode> {
  if (text === undefined || text.trim() === "")
    throw usageError("--reason CODE[,CODE...] is required (e.g. --reason RECORD_WRONG_PARTITION)");
  const reasons = new Set<ErrorCode>();
  for (const part of text.split(",")) {
    const code = part.trim();
    if (!(ERROR_CODES as readonly string[]).includes(code))
      throw usageError(`--reason: '${code}' is not a reason code (docs/processing.md, Bad input)`);
    reasons.add(code as ErrorCode);
  }
  return reasons;
}

function counts(figures: Partial<Record<string, number>>): string {
  const entries = Object.entries(figures).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? "none" : entries.map(([name, n]) => `${name} ${n}`).join(", ");
}

function summary(result: RedriveResult, dryRun: boolean): string {
  const sent = Object.values(result.redriven).reduce((sum, n) => sum + (n ?? 0), 0);
  const next = result.range.partitions.map((p) => `${p.partition}:${p.to}`).join(",");
  return [
    `${dryRun ? "Would re-drive" : "Re-drove"} ${sent} of ${result.read} dead letters read from ${result.topic}`,
    `  by reason: ${counts(result.redriven)}`,
    `  skipped: ${counts(result.skipped)}`,
    `Next run from where this one stopped: --from-offset ${next === "" ? "0" : next}`,
    "",
  ].join("\n");
}

async function redriveCli(argv: readonly string[], io: Io): Promise<number> {
  const { values } = parseCliOptions(argv, {
    reason: { type: "string" },
    rekey: { type: "boolean" },
    "from-offset": { type: "string" },
    "to-offset": { type: "string" },
    "dry-run": { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help === true) {
    io.stdout.write(`${USAGE}\n`);
    return EXIT_OK;
  }
  const reasons = parseReasons(values.reason as string | undefined);
  const from = values["from-offset"] as string | undefined;
  const to = values["to-offset"] as string | undefined;
  const range: RangeRequest =
    from === undefined && to === undefined
      ? { kind: "all" }
      : {
          kind: "offsets",
          ...(from === undefined ? {} : { from: parseOffsetSpec(from, "--from-offset") }),
          ...(to === undefined ? {} : { to: parseOffsetSpec(to, "--to-offset") }),
        };
  const config = loadConfig(process.env);
  const dryRun = values["dry-run"] === true;
  const logger = cliLogger();
  const result = await reach("Kafka", config.KAFKA_BROKERS.join(","), () =>
    redrive(createKafka(config, logger), {
      config,
      reasons,
      rekey: values.rekey === true,
      dryRun,
      range,
      logger,
      onProgress: progressPrinter(io, "redrive"),
    }),
  );
  io.stdout.write(summary(result, dryRun));
  return EXIT_OK;
}

export const redriveCommand: Command = {
  summary: "send dead-lettered records back to the input topic once their cause is fixed",
  run: (argv, io) => withExitCodes("redrive", io, () => redriveCli(argv, io)),
};
