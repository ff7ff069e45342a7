/**
 * Caps the MongoDB operations in flight from one process. FerretDB v1 (PostgreSQL backend) serves each
 * operation on a pooled backend connection; a few in flight overlap the round trips, many only queue
 * inside it. (It also wedged here on multi-statement update commands, which is why writes are single
 * statements: see docs/processing.md.)
 */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }

  /** Runs every task under the cap and waits for all; the first failure is thrown after all settle. */
  async all(tasks: readonly (() => Promise<void>)[]): Promise<void> {
    const results = await Promise.allSettled(tasks.map((task) => this.run(task)));
    const failed = results.find((result) => result.status === "rejected");
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
  }
}
