const HOUR_MS = 3_600_000;

/**
 * How many records the processor may still dead-letter as RECORD_APPLY_FAILED: at most `limit` in any
 * hour. A failure of the billing core on a valid record is a bug; parking that record (its bytes in the
 * dead-letter topic, to be re-driven after the fix) keeps its partition billing everyone else. A bug that
 * fails many records is more likely a bad deploy, and dead-lettering them all would only move the topic
 * into the dead-letter topic: past the limit, the batch is retried until a fix is deployed.
 */
export class ApplyFailureBudget {
  private readonly spent: number[] = [];

  constructor(
    private readonly limit: number,
    private readonly clock: () => number = Date.now,
    private readonly windowMs = HOUR_MS,
  ) {}

  /** Whether one more record may be dead-lettered now. */
  get open(): boolean {
    const since = this.clock() - this.windowMs;
    while (this.spent.length > 0 && this.spent[0]! <= since) this.spent.shift();
    return this.spent.length < this.limit;
  }

  /** One record was dead-lettered. */
  spend(): void {
    this.spent.push(this.clock());
  }
}
