/**
 * Liveness and readiness for the health server (docs/operations.md): a watchdog over the consumer loop,
 * and store pings with a timeout each that report which stores did not answer.
 */
import { redactText } from "../auth/redact.ts";

/** What /healthz reports: alive, or stuck with a one-line reason. */
export interface Liveness {
  alive: boolean;
  reason?: string;
}

/** What /readyz reports: ready, or not with every reason. */
export interface Readiness {
  ready: boolean;
  reasons: string[];
}

/** A store's ping: resolves when the store answered (its value is ignored), rejects or hangs when not. */
export type Ping = () => Promise<unknown>;

/**
 * The consumer loop's watchdog: the processor calls `tick()` whenever its loop shows life, and the loop
 * counts as stuck when no tick came for `stuckAfterMs`. kafkajs' consumer emits `consumer.fetch_start`
 * on every fetch (idle or not) and `consumer.heartbeat` while a batch waits (a slow store, the pending
 * bound), so ticking on both keeps a waiting but healthy member alive. Before the first tick the process
 * is starting (connecting, migrating) and counts as alive; readiness says it is not ready yet.
 */
export class LoopWatchdog {
  private lastTick: number | undefined;

  constructor(
    readonly stuckAfterMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  tick(): void {
    this.lastTick = this.now();
  }

  /** Milliseconds since the last tick, or undefined before the first. */
  get sinceLastTickMs(): number | undefined {
    return this.lastTick === undefined ? undefined : this.now() - this.lastTick;
  }

  liveness(): Liveness {
    const since = this.sinceLastTickMs;
    if (since === undefined || since <= this.stuckAfterMs) return { alive: true };
    return {
      alive: false,
      reason: `consumer loop stuck: no fetch or heartbeat for ${since} ms (limit ${this.stuckAfterMs} ms)`,
    };
  }
}

/** The longest error message a readiness reason quotes (it is served over HTTP). */
const REASON_MAX_CHARS = 200;

/**
 * Pings each store with a timeout and reports those that did not answer. A store whose previous ping is
 * still outstanding is not pinged again (a hung store would otherwise collect one ping per probe):
 * the check waits on the outstanding one, up to the timeout.
 */
export class StorePings {
  private readonly outstanding = new Map<string, Promise<unknown>>();

  constructor(
    private readonly pings: Readonly<Record<string, Ping>>,
    readonly timeoutMs: number,
  ) {}

  async check(): Promise<Readiness> {
    const names = Object.keys(this.pings);
    const reasons = await Promise.all(names.map((name) => this.checkOne(name)));
    const failed = reasons.filter((reason): reason is string => reason !== undefined);
    return { ready: failed.length === 0, reasons: failed };
  }

  private async checkOne(name: string): Promise<string | undefined> {
    let ping = this.outstanding.get(name);
    if (ping === undefined) {
      const started = (async () => this.pings[name]!())();
      ping = started;
      this.outstanding.set(name, started);
      const forget = () => {
        if (this.outstanding.get(name) === started) this.outstanding.delete(name);
      };
      started.then(forget, forget);
    }
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<"timeout">((resolve) => {
      timer = setTimeout(() => resolve("timeout"), this.timeoutMs);
    });
    try {
      const outcome = await Promise.race([ping.then(() => "ok" as const), timeout]);
      return outcome === "ok" ? undefined : `${name} did not answer within ${this.timeoutMs} ms`;
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return `${name} failed: ${redactText(message).replace(/\s+/g, " ").slice(0, REASON_MAX_CHARS)}`;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Every part's reasons together: ready only when every part is. */
export function combineReadiness(...parts: readonly Readiness[]): Readiness {
  const reasons = parts.flatMap((part) => part.reasons);
  return { ready: parts.every((part) => part.ready), reasons };
}
