/**
 * `npm run soak`: the nemesis soak of issue 13 (scripts/soak-run.ts). Prints one table and writes the
 * schedule and a JSON report under .agentmeter/soak/runs/{run}/; exits 1 on any loss, doubling, audit
 * difference or failed check, 2 on a bad argument.
 */
import { parseArgs } from "node:util";
import { createLogger } from "../pipeline/log.ts";
import { renderTable } from "../pipeline/text-table.ts";
import { AgentmeterError, isAgentmeterError } from "../schemas/errors.ts";
import { runDirOf, runSoak, type SoakOptions, type SoakReport } from "./soak-run.ts";
import { FAULT_KINDS, type FaultKind } from "./soak-stream.ts";

const USAGE = `Usage: npm run soak -- [--records N] [--accounts N] [--duration SECONDS] [--seed N]
                      [--faults KIND,KIND,...] [--brokers 1|3] [--processors 2|3]
Fault kinds: ${FAULT_KINDS.join(", ")} (default all)`;

/** One integer CLI option, bounded: a bad value is a CLI_USAGE error naming the option (also chaos-clickhouse.ts). */
export function integer(
  name: string,
  text: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value < min || value > max)
    throw new AgentmeterError(
      "CLI_USAGE",
      `--${name} must be an integer from ${min} to ${max}, got '${text}'`,
    );
  return value;
}

export function parseSoakArgs(argv: readonly string[]): SoakOptions | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        records: { type: "string" },
        accounts: { type: "string" },
        duration: { type: "string" },
        seed: { type: "string" },
        faults: { type: "string" },
        brokers: { type: "string" },
        processors: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new AgentmeterError("CLI_USAGE", (error as Error).message);
  }
  if (values.help === true) return "help";
  const faults = ((values.faults as string | undefined) ?? FAULT_KINDS.join(","))
    .split(",")
    .map((kind) => kind.trim())
    .filter((kind) => kind !== "");
  for (const kind of faults)
    if (!(FAULT_KINDS as readonly string[]).includes(kind))
      throw new AgentmeterError(
        "CLI_USAGE",
        `--faults: unknown kind '${kind}' (known: ${FAULT_KINDS.join(", ")})`,
      );
  const brokers = integer("brokers", values.brokers as string | undefined, 1, 1, 3);
  if (brokers === 2) throw new AgentmeterError("CLI_USAGE", "--brokers must be 1 or 3, got '2'");
  return {
    records: integer("records", values.records as string | undefined, 100_000, 1_000, 10_000_000),
    accounts: integer("accounts", values.accounts as string | undefined, 2_000, 10, 1_000_000),
    durationS: integer("duration", values.duration as string | undefined, 300, 30, 86_400),
    seed: integer("seed", values.seed as string | undefined, 1, 0, 2 ** 31 - 1),
    faults: [...new Set(faults)] as FaultKind[],
    brokers: brokers as 1 | 3,
    processors: integer("processors", values.processors as string | undefined, 2, 2, 3),
  };
}

/** The one table of the issue, plus the checks, one line each. */
export function formatSoakReport(report: SoakReport): string {
  const verdict = report.verdict;
  const lostDoubled = verdict === undefined ? "?" : `${verdict.lost} / ${verdict.doubled}`;
  const rows = report.plan.faults.map((kind) => {
    const of = report.faults.filter((fault) => fault.kind === kind && fault.target !== "none");
    const recoveries = of.map((fault) => fault.recoveryS);
    const longest = recoveries.some((r) => r === null)
      ? "not recovered"
      : recoveries.length === 0
        ? "-"
        : `${Math.max(...(recoveries as number[])).toFixed(1)} s`;
    return [kind, String(of.length), longest, lostDoubled];
  });
  const lines = [
    renderTable(["fault", "injected", "longest recovery", "lost / doubled (run)"], rows),
    "",
    `records ${report.plan.records} over ${report.plan.accounts} accounts (${report.plan.apps} apps), ${report.plan.brokers} broker(s), seed ${report.plan.seed}`,
    `records/s ${report.recordsPerSecond.toFixed(0)} (produce ${report.seconds.produce.toFixed(0)} s, drain ${report.seconds.drain.toFixed(0)} s, total ${report.seconds.total.toFixed(0)} s); peak processor RSS ${report.peakProcessorRssMb} MB`,
    ...(verdict?.checks.map((check) => `${check.ok ? "ok  " : "FAIL"} ${check.name}: ${check.detail}`) ?? [
      "FAIL no verdict (the soak stopped before its checks)",
    ]),
    ...report.findings.map((finding) => `finding: ${finding}`),
    `${report.ok ? "PASS" : "FAIL"}: report ${runDirOf(report.plan.runId, report.stack)}/report.json`,
  ];
  return `${lines.join("\n")}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let options: SoakOptions | "help";
  try {
    options = parseSoakArgs(process.argv.slice(2));
  } catch (error) {
    if (!isAgentmeterError(error, "CLI_USAGE")) throw error;
    process.stderr.write(`soak: ${error.message}\n`);
    process.exit(2);
  }
  if (options === "help") {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  const report = await runSoak(options, createLogger(process.env.LOG_LEVEL ?? "info", "soak"));
  process.stdout.write(formatSoakReport(report));
  process.exit(report.ok ? 0 : 1);
}
