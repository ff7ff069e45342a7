/**
 * The soak's producer, a child process so the nemesis can SIGKILL it mid-burst: sends the soak stream
 * through the SDK at the plan's steady rate and appends every acknowledged message to the acks file
 * (`seq incarnation try` a line). A restarted incarnation reads that file and sends only what no earlier
 * one had acknowledged, so an acknowledged record is never sent again by the soak's producer.
 * Headers `soak-seq`, `soak-inc`, `soak-try` let the checks tell re-sends of unacknowledged records from
 * doublings.
 */
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createLogger } from "../pipeline/log.ts";
import { AgentmeterError } from "../schemas/errors.ts";
import { Agentmeter } from "../sdk/client.ts";
import { type SoakPlan, soakStream } from "./soak-stream.ts";

const MAX_IN_FLIGHT = 4_000;
const MAX_TRIES = 30;

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === "") throw new AgentmeterError("CONFIG_INVALID", `${name} is not set`);
  return value;
}

/** Sequence numbers some incarnation recorded as acknowledged. */
export function readAcked(file: string): Set<number> {
  const acked = new Set<number>();
  if (!existsSync(file)) return acked;
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const seq = Number(line.split(" ")[0]);
    if (line !== "" && Number.isInteger(seq)) acked.add(seq);
  }
  return acked;
}

async function main(): Promise<void> {
  const plan = JSON.parse(readFileSync(env("SOAK_PLAN"), "utf8")) as SoakPlan;
  const acksFile = env("SOAK_ACKS");
  const incarnation = Number(env("SOAK_INCARNATION"));
  const logger = createLogger(process.env.LOG_LEVEL ?? "info", "soak-producer");
  const acked = readAcked(acksFile);
  const meter = await Agentmeter.connect({ strict: true, logger });
  const rate = plan.records / plan.durationS;
  let pending: string[] = [];
  const flushAcks = () => {
    if (pending.length === 0) return;
    appendFileSync(acksFile, pending.join(""));
    pending = [];
  };
  // Often: an ack the file does not hold yet counts as unacknowledged if this process dies now.
  const timer = setInterval(flushAcks, 50);
  let inFlight = 0;
  let retrying = 0;
  let wake: (() => void) | undefined;
  let sent = 0;
  let failed: Error | undefined;
  const send = (key: string, value: string, seq: number, tries: number): void => {
    inFlight++;
    meter
      .sendRaw(key, value, {
        "soak-seq": String(seq),
        "soak-inc": String(incarnation),
        "soak-try": String(tries),
      })
      .then(
        () => {
          pending.push(`${seq} ${incarnation} ${tries}\n`);
        },
        (error: unknown) => {
          if (tries + 1 >= MAX_TRIES) {
            failed = error as Error;
            return;
          }
          logger.warn({ seq, tries, err: (error as Error).message }, "send failed; sending it again in 1 s");
          retrying++;
          setTimeout(() => {
            retrying--;
            send(key, value, seq, tries + 1);
          }, 1_000);
        },
      )
      .finally(() => {
        inFlight--;
        wake?.();
      });
  };
  const started = Date.now();
  let lastLog = started;
  logger.info({ incarnation, alreadyAcked: acked.size, rate }, "producer started");
  for (const item of soakStream(plan)) {
    if (acked.has(item.seq)) continue;
    if (failed !== undefined) throw failed;
    const wait = plan.t0 + (item.seq * 1_000) / rate - Date.now();
    if (wait > 1) await sleep(wait);
    while (inFlight >= MAX_IN_FLIGHT) await new Promise<void>((resolve) => (wake = resolve));
    send(item.key, item.value, item.seq, 0);
    sent++;
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      logger.info({ seq: item.seq, sent, inFlight }, "producing");
    }
  }
  // Bounded: the retries above give up after MAX_TRIES, so this loop ends.
  while (inFlight > 0 || retrying > 0 || failed !== undefined) {
    if (failed !== undefined) throw failed;
    await new Promise<void>((resolve) => {
      wake = resolve;
      setTimeout(resolve, 1_000);
    });
  }
  clearInterval(timer);
  flushAcks();
  await meter.close();
  writeFileSync(`${acksFile}.done`, `${incarnation}\n`);
  logger.info({ sent, seconds: (Date.now() - started) / 1000 }, "producer done");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`soak producer failed: ${(error as Error).stack ?? String(error)}\n`);
      process.exit(1);
    },
  );
}
