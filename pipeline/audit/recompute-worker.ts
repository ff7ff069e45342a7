import { parentPort, workerData } from "node:worker_threads";
import { type MessagePacket, unpackMessages } from "./packet.ts";
import { type RecomputeSetup, UnitRecompute, type UnitResult } from "./units.ts";

/** What the main thread sends a worker: its partitions' records in packets, then `finish`. */
export type ToWorker = { type: "packet"; packet: MessagePacket } | { type: "finish" };

/** What a worker answers: each packet applied (its records, its bytes), then the figures of its units. */
export type FromWorker =
  | { type: "ready" }
  | { type: "applied"; records: number; bytes: number }
  | { type: "result"; results: UnitResult[] };

// The worker runs the audit's own Recomputer on the units (partitions) it was given, nothing more:
// no I/O, no clock. What it returns is merged in the main thread in unit order (mergeUnits).
const port = parentPort;
if (port === null) throw new Error("recompute-worker.ts runs as a worker thread (pipeline/audit/pool.ts)");
const units = new UnitRecompute(workerData as RecomputeSetup);
port.on("message", (message: ToWorker) => {
  if (message.type === "packet") {
    unpackMessages(message.packet, (partition, topicMessage) => units.add(partition, topicMessage));
    port.postMessage({
      type: "applied",
      records: message.packet.count,
      bytes: message.packet.bytes,
    } satisfies FromWorker);
    return;
  }
  port.postMessage({ type: "result", results: units.finish() } satisfies FromWorker);
  port.close();
});
port.postMessage({ type: "ready" } satisfies FromWorker);
