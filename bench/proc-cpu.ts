import { readdirSync, readFileSync } from "node:fs";

export interface ProcessCpu {
  pid: number;
  /** The process's name as the kernel knows it (`comm`, at most 15 characters). */
  name: string;
  /** User + system CPU seconds so far. */
  seconds: number;
}

/** One process's CPU from its /proc stat line; undefined when it has exited. */
export function processCpu(pid: number): ProcessCpu | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The name may hold spaces and parentheses: it ends at the last ")". utime and stime are fields 14
  // and 15 of the line, 12 and 13 after "pid (comm) ".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    pid,
    name: stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")")),
    seconds: (Number(fields[11]) + Number(fields[12])) / 100,
  };
}

/** Every process on the machine (Linux /proc), with its CPU so far. */
export function allProcessesCpu(): ProcessCpu[] {
  const all: ProcessCpu[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const cpu = processCpu(Number(entry));
    if (cpu !== undefined) all.push(cpu);
  }
  return all;
}
