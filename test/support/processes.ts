import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Admin } from "kafkajs";
import { consumerLag } from "../../pipeline/ops/metrics.ts";
import { eventually } from "./pipeline.ts";

/** A processor running as a real OS process, so a test can SIGKILL it like a crash would. */
export interface ProcessorProcess {
  child: ChildProcess;
  name: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves once the processor has joined its group and installed its signal handlers. */
  started: Promise<void>;
}

const LOG_DIR = join(process.cwd(), ".agentmeter", "test-logs");

export function startProcessorProcess(name: string, env: Record<string, string>): ProcessorProcess {
  mkdirSync(LOG_DIR, { recursive: true });
  const log = createWriteStream(join(LOG_DIR, `${name}.log`), { flags: "a" });
  const child = spawn(process.execPath, ["--import", "tsx", "pipeline/processor/main.ts"], {
    // info level: the "processor started" line is how the test knows the member is up.
    env: { ...process.env, ...env, LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const started = new Promise<void>((resolve) => {
    let seen = "";
    child.stdout?.on("data", (chunk: Buffer) => {
      seen = (seen + chunk.toString("utf8")).slice(-4096);
      if (seen.includes('"msg":"processor started"')) resolve();
    });
  });
  child.stdout?.pipe(log);
  child.stderr?.pipe(log);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("exit", (code, signal) => resolve({ code, signal }));
  });
  return { child, name, exited, started };
}

export async function stopProcess(
  processor: ProcessorProcess,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (processor.child.exitCode === null && processor.child.signalCode === null) processor.child.kill(signal);
  return processor.exited;
}

/** Records not yet committed by the group, over all partitions of the topic (as the processor's metrics count them). */
export async function groupLag(admin: Admin, groupId: string, topic: string): Promise<bigint> {
  const [ends, committed] = await Promise.all([
    admin.fetchTopicOffsets(topic),
    admin.fetchOffsets({ groupId, topics: [topic] }),
  ]);
  let lag = 0n;
  for (const records of consumerLag(ends, committed[0]?.partitions ?? []).values()) lag += BigInt(records);
  return lag;
}

export async function waitCaughtUp(
  admin: Admin,
  groupId: string,
  topic: string,
  timeoutMs: number,
): Promise<void> {
  await eventually(
    `group ${groupId} to commit everything on ${topic}`,
    async () => ((await groupLag(admin, groupId, topic)) === 0n ? true : undefined),
    timeoutMs,
  );
}
