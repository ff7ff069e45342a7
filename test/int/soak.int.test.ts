import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { createLogger } from "../../pipeline/log.ts";
import { formatSoakReport } from "../../scripts/soak.ts";
import { runSoak } from "../../scripts/soak-run.ts";
import { FAULT_KINDS } from "../../scripts/soak-stream.ts";
import { getServices } from "../support/services.ts";

/**
 * The short nemesis soak (issue 13, docs/reliability.md): the same code as `npm run soak`, on a stack of
 * its own (other ports, .agentmeter/soak-test), one fault of each kind while the producer sends, then the
 * audit and the independent checks. It starts and kills servers of its own, so it needs the local
 * stack's tools: with servers from the environment or testcontainers it is skipped.
 */
const services = await getServices();
const reason =
  services.source === "local"
    ? undefined
    : `needs the local stack's servers (services are ${services.source})`;
const RECORDS = Number(process.env.AGENTMETER_SOAK_RECORDS ?? 100_000);

describe("soak: every fault once under a steady load, nothing lost, nothing counted twice", {
  timeout: 25 * 60_000,
  skip: reason,
}, () => {
  it(`${RECORDS} records, 2,000 accounts, seed 7: the audit and every cross-check pass`, async () => {
    const report = await runSoak(
      {
        records: RECORDS,
        accounts: 2_000,
        durationS: Math.max(60, Math.round((RECORDS / 100_000) * 300)),
        seed: 7,
        faults: [...FAULT_KINDS],
        brokers: 1,
        stack: "test",
      },
      createLogger(process.env.LOG_LEVEL ?? "warn", "soak"),
    );
    const table = formatSoakReport(report);
    console.log(table);
    assert.ok(report.verdict !== undefined, `the soak reached its checks:\n${table}`);
    for (const check of report.verdict.checks) assert.ok(check.ok, `${check.name}: ${check.detail}`);
    assert.equal(report.verdict.lost, 0, "records lost");
    assert.equal(report.verdict.doubled, 0, "records doubled");
    assert.equal(
      report.faults.filter((fault) => fault.target !== "none").length,
      FAULT_KINDS.length,
      "every fault was injected",
    );
    assert.ok(report.ok, table);
  });
});
