import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import {
  accountKeyOf,
  decodeRecord,
  type InputRecordJson,
  microsToDecimalString,
} from "../../schemas/index.ts";
import { signatureHeaders } from "../../sdk/producer.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { totalsByLevel } from "../../sinks/clickhouse/totals.ts";
import { accountAddress } from "../../sinks/mongo/accounts.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import type { MongoLayout } from "../../sinks/mongo/layout.ts";
import { readAccount, readAppRevenue } from "../../sinks/mongo/read.ts";
import { type Config, loadConfig, wholeNumber } from "../config.ts";
import {
  type AccountState,
  applyBatch,
  BASIS_POINTS,
  type BillingConfig,
  creatorShareBp,
  emptyState,
  paidTokens,
  trialRemaining,
} from "../core/index.ts";
import { createKafka, idempotentProducer } from "../kafka.ts";
import { createLogger } from "../log.ts";
import { Processor } from "../processor/processor.ts";
import { loadBillingConfig } from "../runtime/billing-config.ts";
import { clickHouseFor, mongoLayoutFor } from "../runtime/clients.ts";
import { generateWorkload } from "../simulate/workload.ts";
import { renderTable } from "../text-table.ts";
import {
  argsErrorLine,
  type Command,
  EXIT_OK,
  EXIT_USAGE,
  type Io,
  progressLine,
  withExitCodes,
} from "./io.ts";

const USAGE = `Usage: agentmeter demo [--records N] [--apps N] [--users-per-app N]

Against the Kafka, MongoDB and ClickHouse named by KAFKA_BROKERS, MONGODB_URI and CLICKHOUSE_URL:
starts a processor, produces a realistic workload for both billing levels, waits until it is
processed, and prints balances, creator earnings and ClickHouse totals, checked against the billing
core. \`npm run demo\` brings the local stack up first and sets the three variables.
`;

/** The variables naming the servers the demo runs against. */
export const DEMO_ENDPOINTS = ["KAFKA_BROKERS", "MONGODB_URI", "CLICKHOUSE_URL"] as const;

const money = microsToDecimalString;

/** Basis points as a percentage: each app's creator share is its own (billing config `creator_share_bp`). */
function percent(bp: number): string {
  return `${(bp * 100) / BASIS_POINTS}%`;
}

function decodeAll(records: readonly InputRecordJson[]) {
  return records.map((json) => {
    const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 1 << 20 });
    if (!decoded.ok) throw new Error(`generated record is invalid: ${decoded.reason}`);
    return { record: decoded.record };
  });
}

async function produce(config: Config, records: readonly InputRecordJson[], io: Io): Promise<void> {
  const kafka = createKafka(config, createLogger("warn", "demo"));
  const producer = idempotentProducer(kafka);
  await producer.connect();
  const chunk = 1_000;
  const secret = config.AGENTMETER_OPERATOR_SECRET === "" ? undefined : config.AGENTMETER_OPERATOR_SECRET;
  const progress = progressLine(io.stderr, 1_000);
  for (let start = 0; start < records.length; start += chunk) {
    const messages = records.slice(start, start + chunk).map((record) => {
      const value = JSON.stringify(record);
      // Where the processor requires signed operator records, the demo signs its top-ups as the
      // operator's tooling would (else they are dead-lettered RECORD_UNAUTHORIZED and the balances differ).
      const headers = signatureHeaders(secret, record, value);
      return { key: accountKeyOf(record), value, ...(headers === undefined ? {} : { headers }) };
    });
    await producer.send({ topic: config.AGENTMETER_INPUT_TOPIC, acks: -1, messages });
    progress.update(`demo: produced ${Math.min(start + chunk, records.length)}/${records.length} records`);
  }
  progress.end();
  await producer.disconnect();
}

/** The workload's size, from the command line. */
export type DemoCounts = { records: number; apps: number; usersPerApp: number };

const COUNT_EXPECTED = "a whole number from 1 to 1000000";
// Decimal digits only, as for the config's numbers: Number() would take " ", "0x10" and "1e3".
const countSchema = wholeNumber(1, 1_000_000);
const COUNT_OPTIONS = ["records", "apps", "users-per-app"] as const;

/** A count option's value, or the one line saying what is wrong with it. */
function countOf(option: (typeof COUNT_OPTIONS)[number], text: string): number | string {
  const parsed = countSchema.safeParse(text);
  return parsed.success
    ? parsed.data
    : `--${option} ${JSON.stringify(text)} is invalid: expected ${COUNT_EXPECTED}`;
}

/** The command line's counts, or the exit code when there is nothing to run (help, or a usage error). */
export function parseDemoArgs(argv: readonly string[], io: Io): DemoCounts | number {
  let values: { records: string; apps: string; "users-per-app": string; help: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        records: { type: "string", default: "5000" },
        apps: { type: "string", default: "6" },
        "users-per-app": { type: "string", default: "25" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }) as never);
  } catch (error) {
    const expected = Object.fromEntries(COUNT_OPTIONS.map((option) => [`--${option}`, COUNT_EXPECTED]));
    io.stderr.write(`agentmeter demo: ${argsErrorLine(error, argv, expected)}\n`);
    return EXIT_USAGE;
  }
  if (values.help) {
    io.stdout.write(USAGE);
    return EXIT_OK;
  }
  const [records, apps, usersPerApp] = COUNT_OPTIONS.map((option) => countOf(option, values[option]));
  const problem = [records, apps, usersPerApp].find((count) => typeof count === "string");
  if (problem !== undefined) {
    io.stderr.write(`agentmeter demo: ${problem}\n`);
    return EXIT_USAGE;
  }
  return { records, apps, usersPerApp } as DemoCounts;
}

/**
 * The demo against the servers named by the environment (DEMO_ENDPOINTS). Starting a local stack is
 * the job of the entry that wants one (scripts/demo.ts, npm run demo), so this module, and the Docker
 * image that carries it, does not depend on deploy/local.
 */
export function runDemo(
  counts: DemoCounts,
  io: Io,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Promise<number> {
  // A bad configuration value is one line and exit 2, as for every other command.
  return withExitCodes("demo", io, () => demo(counts, io, env));
}

/** The exit code of a demo whose stores do not hold what the billing core computed. */
const EXIT_MISMATCH = 1;

async function demo(
  counts: DemoCounts,
  io: Io,
  env: Readonly<Record<string, string | undefined>>,
): Promise<number> {
  const missing = DEMO_ENDPOINTS.filter((name) => !env[name]);
  if (missing.length > 0) {
    io.stderr.write(
      `agentmeter demo: set ${missing.join(", ")} (or run npm run demo, which starts the local stack)\n`,
    );
    return EXIT_USAGE;
  }
  const config = loadConfig({ ...env, LOG_LEVEL: env.LOG_LEVEL ?? "warn" });
  const billing = loadBillingConfig(config);
  // Each run bills apps and users of its own, so its figures can be checked against the core alone.
  const run = `d${Date.now().toString(36)}`;
  const records = [...generateWorkload({ ...counts, runId: run, idPrefix: `${run}-` })];
  const expected = applyBatch(emptyState(), decodeAll(records), billing).state;

  const processor = new Processor(config, billing, createLogger(config.LOG_LEVEL, "processor"));
  await processor.start();
  const started = Date.now();
  await produce(config, records, io);
  const mongo = createMongo(config.MONGODB_URI);
  const clickhouse = clickHouseFor(config);
  try {
    const layout = mongoLayoutFor(mongo, config);
    const accounts = Object.values(expected.accounts);
    const stored = await waitForAccounts(layout, accounts, io, config.AGENTMETER_DLQ_TOPIC);
    const elapsed = (Date.now() - started) / 1000;
    io.stderr.write(`demo: ${records.length} records produced and billed in ${elapsed.toFixed(1)} s\n\n`);
    io.stdout.write(
      `Every id of this run starts with "${run}-" ("d" and the start time in base 36): each run bills apps and\n` +
        "users of its own, so its figures can be checked against the billing core alone, whatever earlier runs\n" +
        "left in the stores.\n\n",
    );
    const usageRecords = records.filter((record) => record.type === "usage").length;
    const agrees = await printReport(io, {
      layout,
      clickhouse,
      config,
      billing,
      run,
      accounts,
      stored,
      records: records.length,
      usageRecords,
    });
    if (!agrees) return EXIT_MISMATCH;
  } finally {
    // Leaving the consumer group takes a few seconds: say so rather than sit silent after the report.
    io.stderr.write(
      "\ndemo: stopping the demo's processor (it leaves its consumer group; a few seconds) ...\n",
    );
    await processor.stop();
    await mongo.close();
    await clickhouse.close();
  }
  return EXIT_OK;
}

export const demoCommand: Command = {
  summary: "run the pipeline end to end against running servers and print balances and totals",
  async run(argv, io) {
    const counts = parseDemoArgs(argv, io);
    return typeof counts === "number" ? counts : runDemo(counts, io);
  },
};

/** Waits until every account document carries the figures the core computed (the processor is asynchronous). */
async function waitForAccounts(
  layout: MongoLayout,
  accounts: readonly AccountState[],
  io: Io,
  deadLetters: string,
) {
  const deadline = Date.now() + 120_000;
  const progress = progressLine(io.stderr, 2_000);
  for (;;) {
    const stored = await Promise.all(accounts.map((account) => readAccount(layout, accountAddress(account))));
    // Usage and credits both: an account's last record may be a top-up.
    const done = stored.filter(
      (doc, index) =>
        doc !== null &&
        doc.tokens_used === accounts[index]!.tokens_used &&
        doc.credited_tokens === accounts[index]!.credited_tokens,
    ).length;
    const line = `demo: ${done}/${accounts.length} accounts up to date in MongoDB`;
    if (done === accounts.length) {
      progress.end(line);
      return stored;
    }
    progress.update(line);
    if (Date.now() > deadline) {
      progress.end();
      throw new Error(
        `only ${done}/${accounts.length} accounts hold what the billing core computed within 120 s (dead letters: ${deadLetters})`,
      );
    }
    await sleep(300);
  }
}

async function printReport(
  io: Io,
  ctx: {
    layout: MongoLayout;
    clickhouse: ClickHouseClient;
    config: Config;
    billing: BillingConfig;
    run: string;
    accounts: readonly AccountState[];
    stored: Awaited<ReturnType<typeof readAccount>>[];
    records: number;
    usageRecords: number;
  },
): Promise<boolean> {
  const { accounts, stored } = ctx;
  const endUsers = accounts
    .map((account, index) => ({ account, doc: stored[index]! }))
    .filter(({ account }) => account.level === "app_usage")
    .sort((a, b) => b.account.tokens_used - a.account.tokens_used);
  io.stdout.write(
    `App end users (${ctx.config.AGENTMETER_APP_DB_PREFIX}<app>.AppUsers), top 10 of ${endUsers.length} by tokens\n`,
  );
  io.stdout.write(
    renderTable(
      [
        "account",
        "tokens used",
        "trial left",
        "paid tokens",
        "billed",
        "creator share",
        "platform fee",
        "paused chats",
      ],
      endUsers
        .slice(0, 10)
        .map(({ doc }) => [
          String(doc!.account_key),
          String(doc!.tokens_used),
          String(trialRemaining(doc!)),
          String(paidTokens(doc!)),
          money(BigInt(doc!.billed_micros)),
          money(BigInt(doc!.creator_share_micros)),
          money(BigInt(doc!.platform_fee_micros)),
          String(Object.values(doc!.chats).filter((chat) => chat.paused).length),
        ]),
    ) +
      "\nA negative paid balance is an overdraft: usage is metered after the fact and never refused, so the\n" +
      "record that runs an account out is billed in full and takes the paid balance below zero; that chat is\n" +
      "paused (paused chats) until a top-up brings the balance back above zero (docs/billing.md, budgets).\n\n",
  );

  const creators = accounts
    .map((account, index) => ({ account, doc: stored[index]! }))
    .filter(({ account }) => account.level === "platform");
  const apps = [
    ...new Set(accounts.filter((a) => a.level === "app_usage").map((a) => a.enterprise_id!)),
  ].sort();
  const revenue = await Promise.all(apps.map((app) => readAppRevenue(ctx.layout, app)));
  io.stdout.write(`Apps (${ctx.config.AGENTMETER_APP_DB_PREFIX}<app>.RevenueSharing)\n`);
  io.stdout.write(
    renderTable(
      ["app", "creator share", "billed records", "billed", "creator earnings", "platform fee"],
      revenue.map((app) => [
        app.enterprise_id,
        percent(creatorShareBp("app_usage", app.enterprise_id, ctx.billing)),
        String(app.records),
        money(app.billed_micros),
        money(app.creator_share_micros),
        money(app.platform_fee_micros),
      ]),
    ) + "\n\n",
  );
  io.stdout.write(`Creators' platform budgets (${ctx.config.AGENTMETER_PLATFORM_DB}.MozaiksUsers)\n`);
  io.stdout.write(
    renderTable(
      ["creator", "tokens used", "allowance left", "paid tokens", "billed to creator"],
      creators.map(({ doc }) => [
        String(doc!.mozaiks_user_id),
        String(doc!.tokens_used),
        String(trialRemaining(doc!)),
        String(paidTokens(doc!)),
        money(BigInt(doc!.billed_micros)),
      ]),
    ) + "\n\n",
  );

  const totals = await waitForTotals(ctx.clickhouse, ctx.config.CLICKHOUSE_DATABASE, `${ctx.run}-`, accounts);
  io.stdout.write(`ClickHouse (${ctx.config.CLICKHOUSE_DATABASE}.usage_events) totals of this run\n`);
  io.stdout.write(
    renderTable(
      ["level", "records", "tokens", "cost", "billed", "creator share", "platform fee"],
      totals.map((row) => [
        row.level,
        String(row.records),
        String(row.tokens),
        money(row.cost_micros),
        money(row.billed_micros),
        money(row.creator_share_micros),
        money(row.platform_fee_micros),
      ]),
    ) +
      `\nClickHouse holds one row per usage record: ${ctx.usageRecords} of the ${ctx.records} records produced are\n` +
      `usage; the other ${ctx.records - ctx.usageRecords} are credits (top-ups, grants, budgets) and session events, which change\n` +
      "balances and chats in MongoDB but are not usage, so the row count is lower than the records produced.\n\n",
  );

  const sum = (pick: (account: AccountState) => bigint) =>
    accounts.reduce((total, account) => total + pick(account), 0n);
  const expectedBilled = sum((account) => account.billed_micros);
  const storedBilled = stored.reduce((total, doc) => total + BigInt(doc!.billed_micros), 0n);
  const clickhouseBilled = totals.reduce((total, row) => total + row.billed_micros, 0n);
  const appBilled = revenue.reduce((total, app) => total + app.billed_micros, 0n);
  const splitOk = revenue.every(
    (app) => app.creator_share_micros + app.platform_fee_micros === app.billed_micros,
  );
  // Paid top-ups as well as billing: a top-up the processor refused (an unsigned one where signatures are
  // required) changes no billed amount, only what was paid.
  const expectedPaid = sum((account) => account.paid_amount_micros);
  const storedPaid = stored.reduce((total, doc) => total + BigInt(doc!.paid_amount_micros), 0n);
  const ok =
    expectedBilled === storedBilled &&
    expectedBilled === clickhouseBilled &&
    expectedPaid === storedPaid &&
    splitOk;
  io.stdout.write(
    `Check: billed ${money(expectedBilled)} by the billing core offline, ${money(storedBilled)} in MongoDB, ${money(clickhouseBilled)} in ClickHouse; ` +
      `paid ${money(expectedPaid)} offline, ${money(storedPaid)} in MongoDB; ` +
      `app revenue ${money(appBilled)} split exactly into creator + platform: ${ok ? "OK" : "MISMATCH"}\n`,
  );
  return ok;
}

async function waitForTotals(
  clickhouse: ClickHouseClient,
  database: string,
  prefix: string,
  accounts: readonly AccountState[],
) {
  const usage = accounts.reduce((total, account) => total + account.tokens_used, 0);
  for (let attempt = 0; attempt < 100; attempt++) {
    const totals = await totalsByLevel(clickhouse, database, { enterprisePrefix: prefix });
    if (totals.reduce((total, row) => total + row.tokens, 0) >= usage) return totals;
    await sleep(200);
  }
  return totalsByLevel(clickhouse, database, { enterprisePrefix: prefix });
}
