import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { AgentmeterError } from "../../schemas/errors.ts";
import { processStartTime, sleep } from "./process.ts";
import type { Log } from "./service.ts";

/**
 * One stack operation at a time per AGENTMETER_HOME. node --test runs each test file in its own process,
 * so several getServices() can call stackUp() at once; without this they would start servers twice.
 */
export async function withStackLock<T>(homeDir: string, log: Log, body: () => Promise<T>): Promise<T> {
  const file = path.join(homeDir, "run", "stack.lock");
  mkdirSync(path.dirname(file), { recursive: true });
  const me = JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid) });
  // A cold install takes minutes; a waiter must outlast it.
  const deadline = Date.now() + 20 * 60_000;
  let announced = false;
  for (;;) {
    try {
      writeFileSync(file, me, { flag: "wx" });
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
    let holder: { pid?: number; startTime?: string } = {};
    try {
      holder = JSON.parse(readFileSync(file, "utf8")) as typeof holder;
    } catch {
      // Being written right now, or torn: treat as held and look again.
    }
    const alive = holder.pid !== undefined && processStartTime(holder.pid) === holder.startTime;
    if (!alive && holder.pid !== undefined) {
      // Left by a process that died (Ctrl-C, OOM): take it over.
      rmSync(file, { force: true });
      continue;
    }
    if (!announced) {
      log(`waiting for another stack operation (pid ${holder.pid ?? "?"}) to finish`);
      announced = true;
    }
    if (Date.now() > deadline) {
      throw new AgentmeterError(
        "SERVICE_UNAVAILABLE",
        `stack lock ${file} held by pid ${holder.pid} for 20 minutes`,
      );
    }
    await sleep(300);
  }
  try {
    return await body();
  } finally {
    rmSync(file, { force: true });
  }
}
