/**
 * `npm run chaos:clickhouse`: kills the local stack's ClickHouse with SIGKILL at random moments of a
 * stream of flushes and checks, after each restart, that every table holds each usage row once
 * (docs/analytics.md, "Exactly once"). One partition, flushes of `--rows` usage rows; about half the
 * flushes get a kill 0-60 ms after they start; a failed flush is retried, as the processor does, until
 * it lands. Exits 1 if any check found a table apart, 2 on a bad argument. Needs `npm run stack:up`.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { readPidRecord, stopGroup } from "../deploy/local/process.ts";
import { pidPath } from "../deploy/local/service.ts";
import { loadStackConfig, type StackConfig, stackUp } from "../deploy/local/stack.ts";
import { applyBatch, emptyState } from "../pipeline/core/index.ts";
import { createLogger } from "../pipeline/log.ts";
import type { PositionedOutcome } from "../pipeline/processor/ports.ts";
import { loadBillingConfig } from "../pipeline/runtime/billing-config.ts";
import { generateWorkload, prng } from "../pipeline/simulate/workload.ts";
import { renderTable } from "../pipeline/text-table.ts";
import { AgentmeterError, isAgentmeterError } from "../schemas/errors.ts";
import { decodeRecord, type InputRecord, type UsageOutcome } from "../schemas/index.ts";
import { type ClickHouseClient, createClickHouse, quoteIdent } from "../sinks/clickhouse/client.ts";
import { applyMigrations } from "../sinks/clickhouse/migrations.ts";
import { UsageEventsSink } from "../sinks/clickhouse/usage-events.ts";
import { integer } from "./soak.ts";

const USAGE = "Usage: npm run chaos:clickhouse -- [--kills N] [--rows N] [--seed N]";
const TOPIC = "chaos.usage";

interface Options {
  kills: number;
  rows: number;
  seed: number;
}

function parse(argv: readonly string[]): Options | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      options: {
        kills: { type: "string" },
        rows: { type: "string" },
        seed: { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (error) {
    throw new AgentmeterError("CLI_USAGE", (error as Error).message);
  }
  if (values.help === true) return "help";
  return {
    kills: integer("kills", values.kills as string | undefined, 40, 1, 10_000),
    rows: integer("rows", values.rows as string | undefined, 300, 1, 100_000),
    seed: integer("seed", values.seed as string | undefined, 1, 0, 2 ** 31),
  };
}

/** Usage outcomes of the simulate workload, in order, as the billing core computes them. */
function* outcomeStream(seed: number): Generator<UsageOutcome> {
  const billing = loadBillingConfig({});
  let state = emptyState();
  const records = generateWorkload({ seed, records: 10_000_000, runId: `chaos${seed}` });
  for (;;) {
    const batch: { record: InputRecord }[] = [];
    for (let i = 0; i < 1_000; i++) {
      const next = records.next();
      if (next.done === true) return;
      const decoded = decodeRecord(JSON.stringify(next.value), { maxBytes: 1 << 20 });
      if (decoded.ok) batch.push({ record: decoded.record });
    }
    const result = applyBatch(state, batch, billing);
    state = result.state;
    for (const output of result.outputs) if (output.kind === "usage_outcome") yield output;
  }
}

async function figure(client: ClickHouseClient, query: string): Promise<string> {
  const result = await client.query({ query, format: "JSONEachRow" });
  const [row] = await result.json<{ n: string }>();
  return row?.n ?? "none";
}

/** Each table's count of usage rows, beside what was flushed; the names of those that differ. */
async function check(
  client: ClickHouseClient,
  db: string,
  expected: { records: number; calls: number },
): Promise<{ apart: string[]; figures: Record<string, string> }> {
  const figures: Record<string, string> = {
    usage_events: await figure(client, `SELECT toString(count()) AS n FROM ${db}.usage_events`),
    "usage_events FINAL": await figure(client, `SELECT toString(count()) AS n FROM ${db}.usage_events FINAL`),
    usage_by_minute: await figure(client, `SELECT toString(sum(records)) AS n FROM ${db}.usage_by_minute`),
    usage_by_hour: await figure(client, `SELECT toString(sum(records)) AS n FROM ${db}.usage_by_hour`),
    agent_usage_by_minute: await figure(
      client,
      `SELECT toString(sum(calls)) AS n FROM ${db}.agent_usage_by_minute`,
    ),
    agent_usage_by_hour: await figure(
      client,
      `SELECT toString(sum(calls)) AS n FROM ${db}.agent_usage_by_hour`,
    ),
  };
  const apart = Object.entries(figures)
    .filter(
      ([table, value]) => value !== String(table.startsWith("agent") ? expected.calls : expected.records),
    )
    .map(([table]) => table);
  return { apart, figures };
}

async function killClickHouse(stack: StackConfig): Promise<void> {
  const record = await readPidRecord(pidPath(stack, "clickhouse"));
  if (record === undefined)
    throw new AgentmeterError("SERVICE_UNAVAILABLE", "clickhouse: no pid file; run npm run stack:up");
  await stopGroup(record.pid, "SIGKILL", 10_000);
}

/** Restarts ClickHouse alone; its ports can take a moment to be free after the kill. */
async function restartClickHouse(stack: StackConfig): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await stackUp({ config: stack, only: ["clickhouse"], log: () => undefined });
      return;
    } catch (error) {
      if (attempt >= 30) throw error;
      await sleep(1_000);
    }
  }
}

async function main(options: Options): Promise<boolean> {
  const stack = loadStackConfig();
  const logger = createLogger("silent", "chaos");
  const client = createClickHouse(
    { url: `http://127.0.0.1:${stack.clickhouseHttpPort}`, username: "default", password: "" },
    logger,
  );
  const database = `chaos_${Date.now().toString(36)}`;
  const db = quoteIdent(database);
  await applyMigrations(client, database);
  const sink = new UsageEventsSink(client, database);
  const random = prng(options.seed);
  const stream = outcomeStream(options.seed);
  const expected = { records: 0, calls: 0 };
  const rows: string[][] = [];
  let offset = 0;
  let kills = 0;
  let flushes = 0;
  let failedChecks = 0;
  const started = Date.now();
  while (kills < options.kills) {
    const flush: PositionedOutcome[] = [];
    for (let i = 0; i < options.rows; i++) {
      const outcome = stream.next().value as UsageOutcome;
      flush.push({ position: { topic: TOPIC, partition: 0, offset: String(offset++) }, outcome });
    }
    const kill = random() < 0.5 ? sleep(random() * 60).then(() => killClickHouse(stack)) : undefined;
    let failed = false;
    try {
      await sink.append(TOPIC, 0, flush);
    } catch {
      failed = true;
    }
    if (kill !== undefined) {
      await kill;
      await restartClickHouse(stack);
    }
    // As the processor does: the flush again until it lands.
    for (let attempt = 0; failed; attempt++) {
      try {
        await sink.append(TOPIC, 0, flush);
        failed = false;
      } catch (error) {
        if (attempt >= 60) throw error;
        await sleep(500);
      }
    }
    flushes++;
    expected.records += flush.length;
    expected.calls += flush.reduce((n, row) => n + Object.keys(row.outcome.agents).length, 0);
    if (kill === undefined) continue;
    kills++;
    const { apart, figures } = await check(client, db, expected);
    if (apart.length > 0) {
      failedChecks++;
      rows.push([String(kills), String(expected.records), apart.map((t) => `${t} ${figures[t]}`).join(", ")]);
    }
    process.stderr.write(
      `\rkill ${kills}/${options.kills}, ${flushes} flushes, ${expected.records} rows, tables apart after ${failedChecks} kill(s)`,
    );
  }
  process.stderr.write("\n");
  const { apart, figures } = await check(client, db, expected);
  process.stdout.write(
    `${options.kills} kills over ${flushes} flushes of ${options.rows} rows (${expected.records} rows, ${expected.calls} agent calls) in ${((Date.now() - started) / 1000).toFixed(0)} s\n`,
  );
  if (rows.length > 0)
    process.stdout.write(renderTable(["kill", "rows flushed", "tables apart (their figure)"], rows));
  process.stdout.write(
    `${failedChecks === 0 && apart.length === 0 ? "PASS" : "FAIL"}: after ${failedChecks} of ${options.kills} kills a table was apart; at the end ${apart.length === 0 ? "every table holds each row once" : `apart: ${apart.map((t) => `${t} ${figures[t]}`).join(", ")}`}\n`,
  );
  await client.command({ query: `DROP DATABASE IF EXISTS ${db}` });
  await client.close();
  return failedChecks === 0 && apart.length === 0;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  let options: Options | "help";
  try {
    options = parse(process.argv.slice(2));
  } catch (error) {
    if (!isAgentmeterError(error, "CLI_USAGE")) throw error;
    process.stderr.write(`chaos:clickhouse: ${error.message}\n`);
    process.exit(2);
  }
  if (options === "help") {
    process.stdout.write(`${USAGE}\n`);
    process.exit(0);
  }
  process.exit((await main(options)) ? 0 : 1);
}
