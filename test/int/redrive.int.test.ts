import assert from "node:assert/strict";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { auditCommand } from "../../pipeline/cli/audit.ts";
import { redriveCommand } from "../../pipeline/cli/redrive.ts";
import { partitionForKey } from "../../pipeline/processor/partitioning.ts";
import type { Processor } from "../../pipeline/processor/processor.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import { accountKeyOf, type InputRecordJson } from "../../schemas/index.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { TestPipeline } from "../support/harness.ts";
import { configEnv } from "../support/pipeline.ts";

async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const code = await redriveCommand.run(argv, {
    stdin: process.stdin,
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
  });
  return { code, out, err };
}

/**
 * Dead letters re-driven once their cause is fixed: records a producer put on the wrong partition, or
 * under the wrong key, are billed exactly once after `agentmeter redrive`, however often it runs.
 */
describe("redrive: dead-lettered records back to the input topic, billed exactly once", {
  timeout: 5 * 60_000,
}, () => {
  const records = [
    ...generateWorkload({ seed: 41, records: 600, apps: 2, usersPerApp: 6, runId: "redrive" }),
  ];
  const keys = [...new Set(records.map((record) => accountKeyOf(record)))];
  // A whole account each, so each account's records keep their order wherever they are billed.
  const misplacedKey = keys[1]!;
  const wrongKeyed = keys[2]!;
  const misplaced = records.filter((record) => accountKeyOf(record) === misplacedKey);
  const rekeyed = records.filter((record) => accountKeyOf(record) === wrongKeyed);
  // A credit of another account on a wrong partition: dead-lettered, and never re-driven (unsigned).
  const credit = records.find(
    (record) => record.type === "credit" && ![misplacedKey, wrongKeyed].includes(accountKeyOf(record)),
  )!;
  // What a re-drive sends back: every record of the two accounts but their credits.
  const redriven = [...misplaced, ...rekeyed].filter((record) => record.type !== "credit");
  const credits = misplaced.length + rekeyed.length - redriven.length + 1;
  const kept = records.filter(
    (record) => record !== credit && ![misplacedKey, wrongKeyed].includes(accountKeyOf(record)),
  );
  let pipeline: TestPipeline;
  let processor: Processor;
  let misplacedAt: { partition: number; from: number };
  const saved = { ...process.env };

  before(async () => {
    assert.ok(credit !== undefined && misplaced.length > 3 && rekeyed.length > 3, "the workload has them");
    pipeline = await TestPipeline.create();
    Object.assign(process.env, configEnv(pipeline.config));
    processor = await pipeline.startProcessor();
    const partitions = pipeline.config.AGENTMETER_PARTITIONS;
    const wrongPartition = (key: string) => (partitionForKey(key, partitions) + 1) % partitions;
    const producer = await pipeline.producer();
    await pipeline.produce(kept);
    // The misplaced records go first in the send below: their offsets on that partition follow its end now.
    const partition = wrongPartition(misplacedKey);
    const ends = await (await pipeline.admin()).fetchTopicOffsets(pipeline.topic);
    misplacedAt = { partition, from: Number(ends.find((end) => end.partition === partition)!.high) };
    await producer.send({
      topic: pipeline.topic,
      messages: [
        ...misplaced.map((record) => ({
          key: misplacedKey,
          value: JSON.stringify(record),
          partition: wrongPartition(misplacedKey),
        })),
        ...rekeyed.map((record) => ({ key: "app:nobody:nobody", value: JSON.stringify(record) })),
        {
          key: accountKeyOf(credit),
          value: JSON.stringify(credit),
          partition: wrongPartition(accountKeyOf(credit)),
        },
        { key: "x", value: "not json" },
      ],
    });
    await pipeline.caughtUp();
  });

  after(async () => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    await pipeline?.close();
  });

  it("given records dead-lettered for their partition and their key, when re-driven, then they are billed once, and again nothing more", async () => {
    const dead = misplaced.length + rekeyed.length + 2;
    assert.equal(processor.totals.deadLettered, dead);
    await pipeline.assertStoresMatch(kept);
    const count = (list: readonly InputRecordJson[]) => list.filter((r) => r.type !== "credit").length;
    const reasons = ["--reason", "RECORD_WRONG_PARTITION,RECORD_KEY_MISMATCH", "--rekey"];

    const inputRecords = async () =>
      (await (await pipeline.admin()).fetchTopicOffsets(pipeline.topic)).reduce(
        (sum, partition) => sum + Number(partition.high),
        0,
      );
    const dry = await run([...reasons, "--dry-run"]);
    assert.equal(dry.code, 0, dry.err);
    assert.match(dry.out, new RegExp(`Would re-drive ${redriven.length} of ${dead} dead letters`));
    assert.match(
      dry.out,
      new RegExp(
        `by reason: RECORD_KEY_MISMATCH ${count(rekeyed)}, RECORD_WRONG_PARTITION ${count(misplaced)}\\n`,
      ),
    );
    assert.match(dry.out, new RegExp(`skipped: credit ${credits}, other_reason 1\\n`));
    assert.equal(await inputRecords(), records.length + 1, "the dry run sent nothing");

    const first = await run(reasons);
    assert.equal(first.code, 0, first.err);
    assert.match(first.out, new RegExp(`Re-drove ${redriven.length} of ${dead}`));
    assert.match(first.err, /redrive: \d+ \/ \d+ records \(\d+\/s, done in \d+s\)\n$/, "progress on stderr");
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch([...kept, ...redriven]);
    assert.equal(processor.totals.deadLettered, dead, "none of them dead-lettered again");

    // Everything again: each record is a duplicate by its record_id, nothing is billed twice.
    const duplicatesBefore = processor.totals.duplicates;
    const again = await run(reasons);
    assert.equal(again.code, 0, again.err);
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch([...kept, ...redriven]);
    assert.equal(processor.totals.duplicates - duplicatesBefore, redriven.length);

    // The audit skips the refused originals as the processor did and bills the re-driven copies.
    const report = path.join(await mkdtemp(path.join(tmpdir(), "agentmeter-redrive-")), "audit.json");
    try {
      const audited = await auditCommand.run(["--report", report], {
        stdin: process.stdin,
        stdout: { write: () => true },
        stderr: { write: () => true },
      });
      assert.equal(audited, 0, await readFile(report, "utf8"));
    } finally {
      await rm(path.dirname(report), { recursive: true, force: true });
    }

    // From where the last run stopped: nothing left to re-drive.
    const next = /--from-offset (\S+)/.exec(again.out)?.[1];
    assert.ok(next !== undefined, again.out);
    const rest = await run([...reasons, "--from-offset", next]);
    assert.equal(rest.code, 0, rest.err);
    assert.match(rest.out, /Re-drove 0 of 0 dead letters/);

    // A letter whose record has a usage row at its input position (its flush landed in part before the
    // refusal) is never re-driven: its billed effects are stored already. Rows at the positions the
    // misplaced records were sent to stand for that. These letters do not name an incarnation of the
    // topic (it was never created again), so a row under a later one (`~1`) counts as well.
    const clickhouse = clickHouseFor(pipeline.config);
    try {
      await clickhouse.insert({
        table: `${quoteIdent(pipeline.config.CLICKHOUSE_DATABASE)}.usage_events`,
        values: misplaced.map((_, index) => ({
          topic: index % 2 === 0 ? pipeline.topic : `${pipeline.topic}~1`,
          partition: misplacedAt.partition,
          offset: String(misplacedAt.from + index),
          record_id: `stored-${index}`,
          occurred_at: records[0]!.occurred_at,
        })),
        format: "JSONEachRow",
      });
    } finally {
      await clickhouse.close();
    }
    const partly = await run([...reasons, "--dry-run"]);
    assert.equal(partly.code, 0, partly.err);
    assert.match(partly.out, new RegExp(`Would re-drive ${count(rekeyed)} of ${dead} dead letters`));
    assert.match(partly.out, new RegExp(`stored_in_part ${count(misplaced)}\\n`));
  });

  it("given a bad --reason or none, exits 2 with one line naming it, before any connection", async () => {
    for (const [argv, pattern] of [
      [[], /--reason CODE\[,CODE\.\.\.\] is required/],
      [["--reason", "RECORD_WRONG_PARTITION,NOPE"], /--reason: 'NOPE' is not a reason code/],
      [["--reason", "RECORD_INVALID", "--from-offset", "x"], /--from-offset/],
    ] as const) {
      const result = await run([...argv]);
      assert.equal(result.code, 2, `${argv.join(" ")}: ${result.out}`);
      assert.match(result.err, pattern);
      assert.equal(result.err.trimEnd().split("\n").length, 1, "one line");
    }
  });
});
