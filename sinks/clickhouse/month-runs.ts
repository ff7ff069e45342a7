/**
 * The server refuses an insert that touches more than `max_partitions_per_insert_block` (100) monthly
 * partitions, and a refused insert would be refused again on every retry. Rows go in runs, in their
 * order, each spanning at most this many months, each its own insert.
 */
export const MONTHS_PER_INSERT = 90;

/** `rows` cut into runs of at most MONTHS_PER_INSERT distinct UTC months of `timeOf(row)`, order kept. */
export function monthRuns<T>(rows: readonly T[], timeOf: (row: T) => string): T[][] {
  const runs: T[][] = [];
  let run: T[] = [];
  let months = new Set<string>();
  for (const row of rows) {
    // The tables' partition is the UTC month (toYYYYMM), whatever zone offset the time was sent with.
    const month = new Date(timeOf(row)).toISOString().slice(0, 7);
    if (!months.has(month) && months.size === MONTHS_PER_INSERT) {
      runs.push(run);
      run = [];
      months = new Set();
    }
    months.add(month);
    run.push(row);
  }
  if (run.length > 0) runs.push(run);
  return runs;
}
