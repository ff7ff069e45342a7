import type { Consumer, Kafka } from "kafkajs";
import { AgentmeterError } from "../pipeline/errors.ts";
import type { Logger } from "../pipeline/log.ts";
import { type BudgetState, budgetStateSchema } from "../schemas/index.ts";
import { uuidv7 } from "./record-id.ts";
import { endOffsets } from "./topic-offsets.ts";

/** How much to trust an answer from the view. */
export interface Staleness {
  /** The view has read the state topic up to the end offsets it saw when it started. */
  caught_up: boolean;
  /** The view holds a state for this account (false: never billed, or not read yet). */
  known: boolean;
  /** ms since the processor published the state answered from; null if unknown. */
  age_ms: number | null;
  /** Event time of the last record the state reflects. */
  as_of: string | null;
}

interface Entry {
  state: BudgetState;
  /** Kafka timestamp of the message: when the processor published it. */
  publishedMs: number;
}

type Listener = (state: BudgetState) => void;

/**
 * The KTable pattern: a local, in-memory copy of the compacted budget-state topic (latest state per
 * account key), so that "can this chat continue?" is a Map lookup, not a database call. It reads the
 * whole topic from the beginning with a throwaway consumer group (unique id, nothing committed) and
 * keeps following it. `caught_up` turns true once it has read up to the end offsets captured at start:
 * before that an account may be answered from an older state.
 */
export class BudgetView {
  private readonly states = new Map<string, Entry>();
  private readonly positions = new Map<number, bigint>();
  private targets = new Map<number, bigint>();
  /** Waiters by the account they wait for: a state is shown to its account's waiters only. */
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly caughtUpWaiters: (() => void)[] = [];
  private consumer: Consumer | undefined;
  private caughtUp = false;
  /** States applied since start (for tests and the benchmark). */
  applied = 0;

  constructor(
    private readonly kafka: Kafka,
    private readonly topic: string,
    private readonly groupPrefix: string,
    private readonly logger: Logger,
  ) {}

  async start(): Promise<void> {
    const admin = this.kafka.admin();
    await admin.connect();
    try {
      const offsets = await endOffsets(admin, this.topic);
      for (const partition of offsets) {
        if (BigInt(partition.high) > BigInt(partition.low))
          this.targets.set(partition.partition, BigInt(partition.high));
      }
    } finally {
      await admin.disconnect();
    }
    this.checkCaughtUp();
    this.consumer = this.kafka.consumer({
      groupId: `${this.groupPrefix}-view-${uuidv7()}`,
      maxWaitTimeInMs: 100,
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topic: this.topic, fromBeginning: true });
    await this.consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          this.apply(message.key?.toString("utf8"), message.value, Number(message.timestamp));
        }
        const last = batch.messages[batch.messages.length - 1];
        if (last !== undefined) this.positions.set(batch.partition, BigInt(last.offset) + 1n);
        this.checkCaughtUp();
      },
    });
  }

  /** Resolves once the view has read what the topic held at start; VIEW_NOT_READY after `timeoutMs`. */
  async ready(timeoutMs = 30_000): Promise<void> {
    if (this.caughtUp) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => this.caughtUpWaiters.push(resolve)),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () =>
              reject(
                new AgentmeterError(
                  "VIEW_NOT_READY",
                  `budget view of ${this.topic} did not catch up within ${timeoutMs} ms`,
                ),
              ),
            timeoutMs,
          );
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  get isCaughtUp(): boolean {
    return this.caughtUp;
  }

  get size(): number {
    return this.states.size;
  }

  get(accountKey: string, nowMs = Date.now()): { state: BudgetState | null; staleness: Staleness } {
    const entry = this.states.get(accountKey);
    return {
      state: entry?.state ?? null,
      staleness: {
        caught_up: this.caughtUp,
        known: entry !== undefined,
        age_ms: entry === undefined ? null : Math.max(0, nowMs - entry.publishedMs),
        as_of: entry?.state.as_of ?? null,
      },
    };
  }

  /** Resolves with the first state of `accountKey` (already held or arriving) that satisfies `test`. */
  waitFor(
    accountKey: string,
    test: (state: BudgetState) => boolean,
    timeoutMs = 30_000,
  ): Promise<BudgetState> {
    const held = this.states.get(accountKey)?.state;
    if (held !== undefined && test(held)) return Promise.resolve(held);
    return new Promise((resolve, reject) => {
      const listener: Listener = (state) => {
        if (!test(state)) return;
        clearTimeout(timer);
        this.unlisten(accountKey, listener);
        resolve(state);
      };
      const timer = setTimeout(() => {
        this.unlisten(accountKey, listener);
        reject(
          new AgentmeterError(
            "VIEW_NOT_READY",
            `no budget state of ${accountKey} as awaited within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      let waiters = this.listeners.get(accountKey);
      if (waiters === undefined) {
        waiters = new Set();
        this.listeners.set(accountKey, waiters);
      }
      waiters.add(listener);
    });
  }

  private unlisten(accountKey: string, listener: Listener): void {
    const waiters = this.listeners.get(accountKey);
    if (waiters === undefined) return;
    waiters.delete(listener);
    if (waiters.size === 0) this.listeners.delete(accountKey);
  }

  async stop(): Promise<void> {
    await this.consumer?.disconnect();
    this.consumer = undefined;
  }

  private apply(key: string | undefined, value: Buffer | null, publishedMs: number): void {
    if (key === undefined) return;
    if (value === null) {
      // A tombstone: the account's state was deleted.
      this.states.delete(key);
      return;
    }
    let parsed: ReturnType<typeof budgetStateSchema.safeParse>;
    try {
      parsed = budgetStateSchema.safeParse(JSON.parse(value.toString("utf8")));
    } catch {
      this.logger.warn({ key, topic: this.topic }, "budget state is not JSON; ignored");
      return;
    }
    if (!parsed.success) {
      this.logger.warn({ key, topic: this.topic }, "budget state does not match the schema; ignored");
      return;
    }
    this.states.set(key, { state: parsed.data, publishedMs });
    this.applied++;
    const waiters = this.listeners.get(parsed.data.account_key);
    if (waiters !== undefined) for (const listener of [...waiters]) listener(parsed.data);
  }

  private checkCaughtUp(): void {
    if (this.caughtUp) return;
    for (const [partition, target] of this.targets) {
      if ((this.positions.get(partition) ?? 0n) < target) return;
    }
    this.caughtUp = true;
    for (const resolve of this.caughtUpWaiters.splice(0)) resolve();
  }
}
