import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { defaultBillingConfig } from "../../pipeline/core/index.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { decodeRecord, type TopicRecord } from "../../schemas/index.ts";
import { applyInCuts } from "./apply-in-cuts.ts";
import { config as billingConfig } from "./builders.ts";

/**
 * applyBatchInPlace (the audit's and `compute`'s apply) against applyBatch (the processor's): the same
 * outputs and the same final state for the same records, however the stream is cut into batches.
 */

function workload(seed: number): TopicRecord[] {
  return [
    ...generateWorkload({ records: 1_500, apps: 3, usersPerApp: 8, seed, startAt: "2026-01-05T09:00:00Z" }),
  ].map((json) => {
    const decoded = decodeRecord(JSON.stringify(json), { maxBytes: 1 << 20 });
    assert.ok(decoded.ok);
    return decoded.record;
  });
}

describe("applyBatchInPlace", () => {
  test("Property: on the simulate workload (both levels, credits, sessions, pauses), cut anywhere, it equals applyBatch", () => {
    const streams = [1, 2, 3].map(workload);
    fc.assert(
      fc.property(
        fc.constantFrom(0, 1, 2),
        fc.array(fc.nat(1_500), { maxLength: 12 }),
        fc.boolean(),
        (which, cuts, small) => {
          const records = streams[which]!;
          // A small trial and thresholds make pauses, exhaustion and overdraft common
          const config = small
            ? billingConfig({ app_trial_tokens: { default: 2_000 }, platform_allowance_tokens: 5_000 })
            : defaultBillingConfig;
          const pure = applyInCuts(records, cuts, config);
          const inPlace = applyInCuts(records, cuts, config, true);
          assert.deepEqual(inPlace.outputs, pure.outputs);
          assert.deepEqual(inPlace.state, pure.state);
        },
      ),
      { numRuns: 25 },
    );
  });
});
