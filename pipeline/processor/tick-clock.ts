/**
 * Appends a tick record to each input partition this member owns, on a timer, so that event time moves
 * on partitions with no traffic and holds expire there too (a hold is leaked at most one interval past
 * its expiry). The tick is in the topic: a replay and the audit expire holds at exactly the same records.
 */
import type { Producer } from "kafkajs";
import { SCHEMA_VERSION, type TickRecord } from "../../schemas/index.ts";
import { type TickKey, tickKeyFor } from "../../schemas/keys.ts";
import { type CreditAuthorization, SIGNATURE_HEADER, signRecord } from "../auth/signature.ts";
import type { Logger } from "../log.ts";
import { partitionForKey } from "./partitioning.ts";

export interface TickClockDeps {
  producer: Producer;
  topic: string;
  intervalMs: number;
  /** Ticks are operator records: signed where credits must be. */
  creditPolicy: CreditAuthorization;
  /** The partitions to tick now, and the topic's partition count their keys must land under. */
  targets: () => { partitions: readonly number[]; partitionCount: number };
  logger: Logger;
  /** Called for each interval whose ticks were not written (the metrics count it). */
  onFailure?: () => void;
}

export class TickClock {
  private timer: NodeJS.Timeout | undefined;
  private inFlight = false;
  private readonly keys = new Map<string, TickKey>();
  /** Ticks written since start (tests and the log). */
  sent = 0;

  constructor(private readonly deps: TickClockDeps) {}

  start(): void {
    if (this.deps.intervalMs <= 0 || this.timer !== undefined) return;
    this.timer = setInterval(() => void this.tick(), this.deps.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One tick on every target partition; a failure is logged and the next interval tries again. */
  async tick(now = new Date()): Promise<void> {
    if (this.inFlight) return;
    const { partitions, partitionCount } = this.deps.targets();
    if (partitions.length === 0 || partitionCount === 0) return;
    this.inFlight = true;
    try {
      const messages = partitions.map((partition) => {
        const record: TickRecord = {
          type: "tick",
          schema_version: SCHEMA_VERSION,
          record_id: `tick-${partition}-${now.getTime()}`,
          partition,
          occurred_at: now.toISOString(),
        };
        const value = JSON.stringify(record);
        const policy = this.deps.creditPolicy;
        return {
          key: this.keyFor(partition, partitionCount),
          value,
          timestamp: String(now.getTime()),
          ...(policy.required ? { headers: { [SIGNATURE_HEADER]: signRecord(policy.secret, value) } } : {}),
        };
      });
      await this.deps.producer.send({ topic: this.deps.topic, acks: -1, messages });
      this.sent += messages.length;
    } catch (error) {
      this.deps.onFailure?.();
      this.deps.logger.warn({ err: error }, "tick not written; the next interval tries again");
    } finally {
      this.inFlight = false;
    }
  }

  /** A key that the murmur2 partitioner puts on `partition` (found once per partition and count). */
  private keyFor(partition: number, count: number): TickKey {
    const cacheKey = `${partition}/${count}`;
    let key = this.keys.get(cacheKey);
    if (key === undefined) {
      key = tickKeyFor(partition, (candidate) => partitionForKey(candidate, count) === partition);
      this.keys.set(cacheKey, key);
    }
    return key;
  }
}
