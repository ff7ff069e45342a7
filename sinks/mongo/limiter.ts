/**
 * Caps the MongoDB write statements in flight from one process. A task weighs as many statements as it
 * sends (a bulk of 16 updates weighs 16). The cap is in statements, not commands, because FerretDB v1
 * (PostgreSQL backend) holds one pooled PostgreSQL connection per statement of an `update` command until
 * the whole command ends: once the statements in flight over all clients exceed its pool
 * (`pool_max_conns`, 50 by default), every command waits for a connection that never comes and the server
 * hangs. See docs/processing.md for the measurement.
 */
export class Limiter {
  private active = 0;
  private readonly waiting: { weight: number; start: () => void }[] = [];

  constructor(readonly max: number) {}

  async run<T>(task: () => Promise<T>, weight = 1): Promise<T> {
    const cost = Math.min(Math.max(1, weight), this.max);
    // First come, first served: a heavy task is not overtaken for ever by light ones.
    if (this.waiting.length > 0 || this.active + cost > this.max)
      await new Promise<void>((start) => this.waiting.push({ weight: cost, start }));
    else this.active += cost;
    try {
      return await task();
    } finally {
      this.active -= cost;
      this.wake();
    }
  }

  private wake(): void {
    for (let next = this.waiting[0]; next !== undefined; next = this.waiting[0]) {
      if (this.active + next.weight > this.max) return;
      this.waiting.shift();
      this.active += next.weight;
      next.start();
    }
  }

  /** Runs every task under the cap and waits for all; the first failure is thrown after all settle. */
  async all(tasks: readonly WeightedTask[]): Promise<void> {
    const results = await Promise.allSettled(
      tasks.map((task) => (typeof task === "function" ? this.run(task) : this.run(task.run, task.weight))),
    );
    const failed = results.find((result) => result.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }
}

export type WeightedTask = (() => Promise<void>) | { run: () => Promise<void>; weight: number };
