import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";
import { accountKeyOf, type InputRecordJson } from "../../schemas/index.ts";
import { Agentmeter } from "../../sdk/client.ts";
import type { RecordInput } from "../../sdk/validate.ts";
import { loadConfig, wholeNumber } from "../config.ts";
import { reach } from "../runtime/reach.ts";
import { generateWorkload } from "../simulate/workload.ts";
import {
  argsErrorLine,
  type Command,
  EXIT_OK,
  EXIT_USAGE,
  type Io,
  progressLine,
  withExitCodes,
} from "./io.ts";

const USAGE = `Usage: agentmeter simulate [--records N] [--rate N/s] [--malformed N] [--seed N]
                          [--apps N] [--users-per-app N] [--run-id ID] [--dry-run]

Produces the deterministic two-level workload (creators building apps, end users chatting, trials that
run out, top-ups, sessions that start and finish) to the input topic through the SDK's producer, at
--rate records per second (default: as fast as the broker acks), with a progress line on stderr.
--malformed N mixes in N records the processor must dead-letter (not JSON, missing or unknown fields,
negative tokens). --dry-run prints JSON Lines to stdout instead (input for 'agentmeter compute').
Kafka and topics come from the environment (KAFKA_BROKERS, AGENTMETER_INPUT_TOPIC, ...).
`;

/** Bad records of every kind the decoder rejects, so the dead-letter path shows in a demo. */
function malformed(index: number, runId: string): { key: string; value: string } {
  const base = {
    type: "usage",
    record_id: `${runId}-bad-${index}`,
    level: "app_usage" as const,
    enterprise_id: "app-000",
    mozaiks_user_id: "creator-000",
    platform_user_id: "user-bad",
    workflow_type: "chat_interaction",
    workflow_name: "chat",
    session_id: `${runId}-bad`,
    chat_id: `${runId}-bad`,
    agent_usage: { CustomerAgent: { prompt_tokens: 10, completion_tokens: 10 } },
    occurred_at: new Date().toISOString(),
  };
  const key = accountKeyOf(base);
  switch (index % 4) {
    case 0:
      return { key, value: `{"type":"usage","record_id":"${runId}-bad-${index}",` };
    case 1: {
      const { agent_usage: _dropped, ...missing } = base;
      return { key, value: JSON.stringify(missing) };
    }
    case 2:
      return {
        key,
        value: JSON.stringify({
          ...base,
          agent_usage: { CustomerAgent: { prompt_tokens: -1, completion_tokens: 10 } },
        }),
      };
    default:
      // Fields the processor computes (cost, tokens_used) are refused, never trusted.
      return { key, value: JSON.stringify({ ...base, cost: 0.45, tokens_used: 20 }) };
  }
}

function parseRate(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const match = /^(\d+(?:\.\d+)?)(?:\/s)?$/.exec(text.trim());
  return match === null ? Number.NaN : Number(match[1]);
}

function bar(done: number, total: number): string {
  const width = 24;
  const filled = total === 0 ? width : Math.round((done / total) * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

type Item = { key: string; value: string; record?: InputRecordJson };

/** The workload with the malformed records spread evenly through it. */
function* items(records: readonly InputRecordJson[], bad: number, runId: string): Generator<Item> {
  const every = bad === 0 ? 0 : Math.max(1, Math.floor(records.length / (bad + 1)));
  let sentBad = 0;
  for (let i = 0; i < records.length; i++) {
    if (every > 0 && sentBad < bad && i > 0 && i % every === 0) yield malformed(sentBad++, runId);
    const record = records[i]!;
    yield { key: accountKeyOf(record), value: JSON.stringify(record), record };
  }
  while (sentBad < bad) yield malformed(sentBad++, runId);
}

export const simulateCommand: Command = {
  summary: "produce a realistic two-level workload (and a few malformed records) at a chosen rate",
  async run(argv, io) {
    let values: Record<string, string | boolean | undefined>;
    try {
      ({ values } = parseArgs({
        args: [...argv],
        options: {
          records: { type: "string", default: "1000" },
          rate: { type: "string" },
          malformed: { type: "string", default: "0" },
          seed: { type: "string", default: "42" },
          apps: { type: "string", default: "5" },
          "users-per-app": { type: "string", default: "20" },
          "run-id": { type: "string" },
          "dry-run": { type: "boolean" },
          help: { type: "boolean", short: "h" },
        },
        strict: true,
      }));
    } catch (error) {
      io.stderr.write(`agentmeter simulate: ${argsErrorLine(error, argv)}\n`);
      return EXIT_USAGE;
    }
    if (values.help) {
      io.stdout.write(USAGE);
      return EXIT_OK;
    }
    // Digits only, as the configuration's numbers (config.ts wholeNumber): Number() would take "0x10",
    // "1e3" and "" (as 0).
    const counts = { records: 0, malformed: 0, seed: 0, apps: 0, "users-per-app": 0 };
    for (const name of Object.keys(counts) as (keyof typeof counts)[]) {
      const min = name === "malformed" || name === "seed" ? 0 : 1;
      const parsed = wholeNumber(min, 10_000_000).safeParse(values[name]);
      if (!parsed.success) {
        io.stderr.write(
          `agentmeter simulate: --${name} must be an integer from ${min} to 10000000, got ${JSON.stringify(values[name])}\n`,
        );
        return EXIT_USAGE;
      }
      counts[name] = parsed.data;
    }
    const rate = parseRate(values.rate as string | undefined);
    if (rate !== undefined && !(rate > 0)) {
      io.stderr.write(
        `agentmeter simulate: --rate must be a positive number of records per second (e.g. 500/s), got ${String(values.rate)}\n`,
      );
      return EXIT_USAGE;
    }
    const runId = (values["run-id"] as string | undefined) ?? `sim-${Date.now().toString(36)}`;
    if (!/^[A-Za-z0-9][A-Za-z0-9_-]{0,40}$/.test(runId)) {
      io.stderr.write(`agentmeter simulate: --run-id must be 1-41 chars of A-Z a-z 0-9 _ -, got ${runId}\n`);
      return EXIT_USAGE;
    }
    const records = [
      ...generateWorkload({
        seed: counts.seed,
        records: counts.records,
        apps: counts.apps,
        usersPerApp: counts["users-per-app"],
        runId,
      }),
    ];
    const total = records.length + counts.malformed;

    if (values["dry-run"]) {
      for (const item of items(records, counts.malformed, runId)) io.stdout.write(`${item.value}\n`);
      return EXIT_OK;
    }
    return withExitCodes("simulate", io, () => produce(records, counts.malformed, runId, rate, total, io));
  },
};

async function produce(
  records: readonly InputRecordJson[],
  bad: number,
  runId: string,
  rate: number | undefined,
  total: number,
  io: Io,
): Promise<number> {
  // Read here only to name the brokers should they not answer; connect reads the same environment.
  const brokers = loadConfig().KAFKA_BROKERS.join(",");
  // Strict: the simulator never asks canContinue, so it needs no budget view.
  const meter = await reach("Kafka", brokers, () => Agentmeter.connect({ strict: true }));
  const started = Date.now();
  let sent = 0;
  let lastDraw = 0;
  const progress = progressLine(io.stderr);
  const line = (now: number) => {
    const acked = meter.stats().acked;
    const perSecond = Math.round(acked / Math.max(0.001, (now - started) / 1000));
    return `simulate ${bar(acked, total)} ${acked}/${total} acked, ${perSecond}/s   `;
  };
  const draw = () => {
    const now = Date.now();
    if (now - lastDraw < 200) return;
    lastDraw = now;
    progress.update(line(now));
  };
  let window: Promise<unknown>[] = [];
  try {
    for (const item of items(records, bad, runId)) {
      if (rate !== undefined) {
        const due = started + (sent / rate) * 1000;
        const wait = due - Date.now();
        if (wait > 1) await sleep(wait);
      }
      window.push(
        item.record === undefined
          ? meter.sendRaw(item.key, item.value)
          : meter.send(item.record as RecordInput),
      );
      sent++;
      // Bounded memory: wait for a window of acks, which also lets the batches fill.
      if (window.length >= 5_000) {
        await Promise.all(window);
        window = [];
      }
      if (sent % 100 === 0) draw();
    }
    await Promise.all(window);
    await meter.close();
    progress.end(line(Date.now()));
    const seconds = (Date.now() - started) / 1000;
    io.stderr.write(
      `simulate: ${total} records (${bad} malformed, run ${runId}) acked on ${meter.config.AGENTMETER_INPUT_TOPIC} in ${seconds.toFixed(1)} s\n`,
    );
    return EXIT_OK;
  } catch (error) {
    progress.end();
    await meter.close().catch(() => undefined);
    throw error;
  }
}
