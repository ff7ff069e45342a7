import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import type { Difference } from "../../pipeline/audit/diff.ts";
import { suffixedConfig } from "../../pipeline/audit/namespace.ts";
import type { AuditReport } from "../../pipeline/audit/report.ts";
import { auditCommand } from "../../pipeline/cli/audit.ts";
import type { Io } from "../../pipeline/cli/io.ts";
import { replayCommand } from "../../pipeline/cli/replay.ts";
import type { Config } from "../../pipeline/config.ts";
import { defaultPriceBook } from "../../pipeline/core/index.ts";
import { createKafka } from "../../pipeline/kafka.ts";
import { createLogger } from "../../pipeline/log.ts";
import { clickHouseFor, mongoLayoutFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { quoteIdent } from "../../sinks/clickhouse/client.ts";
import { createMongo } from "../../sinks/mongo/client.ts";
import { COLLECTIONS } from "../../sinks/mongo/layout.ts";
import { correctionsOf } from "../support/corrections.ts";
import { TestPipeline } from "../support/harness.ts";
import { configEnv } from "../support/pipeline.ts";

/** Runs a command in-process with captured output. */
async function run(
  command: typeof auditCommand,
  argv: string[],
): Promise<{ code: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const io: Io = {
    stdin: process.stdin,
    stdout: { write: (text: string) => (out += text) },
    stderr: { write: (text: string) => (err += text) },
  };
  const code = await command.run(argv, io);
  return { code, out, err };
}

describe("audit and replay on a real topic and real stores", () => {
  const usage = [...generateWorkload({ seed: 11, records: 3_000, apps: 3, usersPerApp: 10, runId: "audit" })];
  // With voids and refunds after it: the adjustments table and the accounts' corrections are audited too.
  let records: InputRecordJson[];
  let config: Config;
  let dir: string;
  const saved = { ...process.env };

  before(async () => {
    const pipeline = await TestPipeline.create();
    config = pipeline.config;
    records = [...usage, ...correctionsOf(usage, pipeline.billing)];
    dir = await mkdtemp(path.join(tmpdir(), "agentmeter-audit-"));
    // The commands read their configuration from the environment, as they do in a shell.
    Object.assign(process.env, configEnv(config));
    delete process.env.AGENTMETER_BILLING_CONFIG;
    try {
      await pipeline.startProcessor();
      // A message under the wrong key and one that is not JSON: the processor dead-letters both.
      await (await pipeline.producer()).send({
        topic: pipeline.topic,
        messages: [
          { key: "app:nobody:nobody", value: JSON.stringify(records[0]) },
          { key: "x", value: "not json" },
        ],
      });
      await pipeline.produce(records);
      // Committed to the topic's end: every store holds every record.
      await pipeline.caughtUp();
      // The harness's verdict (the audit's diff and the checks it adds) before the audit's own below.
      await pipeline.assertStoresMatch(records);
    } finally {
      await pipeline.close();
    }
  });

  after(async () => {
    for (const name of Object.keys(process.env)) if (!(name in saved)) delete process.env[name];
    Object.assign(process.env, saved);
    // The reports written into it are read by the tests only: nothing to keep in /tmp.
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  const reportOf = async (file: string): Promise<AuditReport> => JSON.parse(await readFile(file, "utf8"));

  it("given a clean run, an audit finds no difference (exit 0) and a second audit writes a byte-identical report", async () => {
    const first = path.join(dir, "first.json");
    const second = path.join(dir, "second.json");
    const one = await run(auditCommand, ["--report", first, "--workers", "1"]);
    assert.equal(one.code, 0, `${one.out}\n${one.err}`);
    const report = await reportOf(first);
    assert.equal(report.mode, "complete");
    assert.deepEqual(report.differences, []);
    assert.equal(report.counts.records, records.length);
    assert.equal(report.counts.skipped_key_mismatch, 1);
    assert.equal(report.counts.skipped_undecodable, 1);
    assert.ok(report.summary.find((row) => row.store === "mongodb.accounts")!.checked > 20);
    assert.ok(report.summary.find((row) => row.store === "clickhouse.adjustments")!.checked > 0);
    assert.match(one.err, /audit: \d+ \/ \d+ records \(\d+\/s, ETA \d+s\)/, "progress on stderr");
    assert.match(one.err, /audit: \d+ \/ \d+ records \(\d+\/s, done in \d+s\)\n$/, "the last line");
    const two = await run(auditCommand, ["--report", second]);
    assert.equal(two.code, 0);
    assert.equal(await readFile(second, "utf8"), await readFile(first, "utf8"));
  });

  it("given a store that does not answer, the audit says which in one line before reading the topic (exit 3); a delta audit needs no MongoDB", async () => {
    const saved = { mongo: process.env.MONGODB_URI, clickhouse: process.env.CLICKHOUSE_URL };
    try {
      process.env.CLICKHOUSE_URL = "http://127.0.0.1:1";
      const noClickHouse = await run(auditCommand, ["--report", path.join(dir, "no-clickhouse.json")]);
      assert.equal(noClickHouse.code, 3);
      assert.equal(
        noClickHouse.err,
        "agentmeter audit: ClickHouse at http://127.0.0.1:1 does not answer: connect ECONNREFUSED 127.0.0.1:1\n",
      );
      process.env.CLICKHOUSE_URL = saved.clickhouse;
      process.env.MONGODB_URI = "mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=1000";
      const noMongo = await run(auditCommand, ["--report", path.join(dir, "no-mongo.json")]);
      assert.equal(noMongo.code, 3);
      assert.match(
        noMongo.err,
        /^agentmeter audit: MongoDB at mongodb:\/\/127\.0\.0\.1:1\/.* does not answer: .+\n$/,
      );
      assert.doesNotMatch(noMongo.err, /\d+ records? read/, "answered before reading the topic");
      const delta = await run(auditCommand, [
        "--from-offset",
        "0:10",
        "--report",
        path.join(dir, "delta.json"),
      ]);
      assert.equal(delta.code, 0, delta.err);
    } finally {
      process.env.MONGODB_URI = saved.mongo;
      process.env.CLICKHOUSE_URL = saved.clickhouse;
    }
  });

  it("given 1, 3 or 0 (main thread) worker threads, in process or from bin/agentmeter.mjs, the report is byte-identical", async () => {
    const one = path.join(dir, "workers-1.json");
    assert.equal((await run(auditCommand, ["--report", one, "--workers", "1"])).code, 0);
    const bytes = await readFile(one, "utf8");
    for (const workers of ["3", "0"]) {
      const file = path.join(dir, `workers-${workers}.json`);
      const audited = await run(auditCommand, ["--report", file, "--workers", workers]);
      assert.equal(audited.code, 0, audited.err);
      assert.equal(await readFile(file, "utf8"), bytes, `${workers} worker(s)`);
    }
    // The launcher registers tsx with register(), not --import: its worker threads must load TypeScript too.
    const file = path.join(dir, "bin-workers-2.json");
    const cli = await new Promise<{ code: number | null; err: string }>((resolve, reject) => {
      const bin = fileURLToPath(new URL("../../bin/agentmeter.mjs", import.meta.url));
      const child = spawn(process.execPath, [bin, "audit", "--report", file], {
        env: { ...process.env, AGENTMETER_AUDIT_WORKERS: "2" },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let err = "";
      child.stderr.on("data", (chunk) => (err += chunk));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, err }));
    });
    assert.equal(cli.code, 0, cli.err);
    assert.equal(await readFile(file, "utf8"), bytes, "bin/agentmeter.mjs with AGENTMETER_AUDIT_WORKERS=2");
  });

  it("given a replay into a suffix, the replayed namespace audits with zero differences", async () => {
    // A suffix of this run's own: app databases of a replay are named by the suffix alone.
    const suffix = `r${Date.now().toString(36).slice(-8)}`;
    const replayed = await run(replayCommand, ["--suffix", suffix]);
    assert.equal(replayed.code, 0, replayed.err);
    const file = path.join(dir, "replay.json");
    const audited = await run(auditCommand, ["--suffix", suffix, "--report", file]);
    assert.equal(audited.code, 0, audited.out);
    const report = await reportOf(file);
    assert.equal(report.namespace.clickhouse_database, `${config.CLICKHOUSE_DATABASE}_${suffix}`);
    assert.deepEqual(report.differences, []);
    // The same suffix again would find its records already applied: refused, nothing written.
    const again = await run(replayCommand, ["--suffix", suffix]);
    assert.equal(again.code, 2, again.err);
    assert.match(again.err, /replay namespace is not empty \(MongoDB /);
    // Each part of the namespace alone still refuses the suffix, until all of it is dropped.
    const named = suffixedConfig(config, suffix);
    const mongo = createMongo(config.MONGODB_URI);
    const clickhouse = clickHouseFor(config);
    const admin = createKafka(config, createLogger("silent")).admin();
    await admin.connect();
    try {
      const { databases } = await mongo.db("admin").admin().listDatabases({ nameOnly: true });
      for (const { name } of databases)
        if (
          name === named.AGENTMETER_PLATFORM_DB ||
          name === named.AGENTMETER_WORKFLOW_DB ||
          name.startsWith(named.AGENTMETER_APP_DB_PREFIX)
        )
          await mongo.db(name).dropDatabase();
      const noMongo = await run(replayCommand, ["--suffix", suffix]);
      assert.equal(noMongo.code, 2, noMongo.err);
      assert.match(
        noMongo.err,
        new RegExp(
          `not empty \\(ClickHouse ${named.CLICKHOUSE_DATABASE} with rows in [^;]+; consumer group ${named.AGENTMETER_GROUP_ID.replaceAll(".", "\\.")} with offsets committed`,
        ),
      );
      await clickhouse.command({ query: `DROP DATABASE ${quoteIdent(named.CLICKHOUSE_DATABASE)}` });
      const groupOnly = await run(replayCommand, ["--suffix", suffix]);
      assert.equal(groupOnly.code, 2, groupOnly.err);
      assert.match(groupOnly.err, /not empty \(consumer group [^;)]+ with offsets committed/);
      await admin.deleteGroups([named.AGENTMETER_GROUP_ID]);
      // The earlier replay's budget events are still on its topic: a new replay would append to them.
      const topicsOnly = await run(replayCommand, ["--suffix", suffix]);
      assert.equal(topicsOnly.code, 2, topicsOnly.err);
      assert.match(
        topicsOnly.err,
        new RegExp(
          `not empty \\([^)]*topic ${named.AGENTMETER_EVENTS_TOPIC.replaceAll(".", "\\.")} with \\d+ messages?`,
        ),
      );
      const outputs = [
        named.AGENTMETER_HOLDS_TOPIC,
        named.AGENTMETER_DLQ_TOPIC,
        named.AGENTMETER_EVENTS_TOPIC,
        named.AGENTMETER_STATE_TOPIC,
      ];
      const present = (await admin.listTopics()).filter((topic) => outputs.includes(topic));
      await admin.deleteTopics({ topics: present });
      // Brokers delete topics asynchronously: the replay may create them only once they are gone.
      const deadline = Date.now() + 60_000;
      while ((await admin.listTopics()).some((topic) => outputs.includes(topic))) {
        assert.ok(Date.now() < deadline, "the replay's output topics were deleted within 60 s");
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      // All of it dropped: the suffix replays again and audits clean.
      const fresh = await run(replayCommand, ["--suffix", suffix]);
      assert.equal(fresh.code, 0, fresh.err);
      const reaudited = await run(auditCommand, ["--suffix", suffix, "--report", file]);
      assert.equal(reaudited.code, 0, reaudited.out);
      assert.deepEqual((await reportOf(file)).differences, []);
    } finally {
      await mongo.close();
      await clickhouse.close();
      await admin.disconnect();
    }
  });

  it("given a new price book, the dry run shows the changed costs and writes nothing", async () => {
    const priceBook = {
      entries: [
        ...defaultPriceBook.entries,
        {
          price_id: "gpt-4o-2026-01",
          model: "gpt-4o",
          effective_from: "2026-01-01T00:00:00Z",
          prompt_micros_per_mtok: 5_000_000,
          completion_micros_per_mtok: 20_000_000,
        },
      ],
    };
    const billingFile = path.join(dir, "billing.json");
    await writeFile(billingFile, JSON.stringify({ price_book: priceBook }));
    const file = path.join(dir, "dry-run.json");
    const dry = await run(replayCommand, ["--dry-run", "--billing-config", billingFile, "--report", file]);
    assert.equal(dry.code, 1, dry.err);
    const report = await reportOf(file);
    const costs = report.differences.filter((d) => d.field === "cost_micros");
    assert.ok(costs.some((d) => d.store === "mongodb.accounts"));
    assert.ok(costs.some((d) => d.store === "clickhouse.usage_events"));
    // Dearer gpt-4o: the stored (old) cost is below the recomputed one everywhere it differs, and a
    // void's stored reversal (a negative cost) above it.
    for (const d of costs) {
      const sign = d.store === "clickhouse.adjustments" ? 1n : -1n;
      assert.ok(BigInt(d.delta!) * sign > 0n, `${d.store} ${d.subject}: ${d.delta}`);
    }
    const live = await run(auditCommand, ["--report", path.join(dir, "after-dry-run.json")]);
    assert.equal(live.code, 0, "the dry run changed nothing");
  });

  it("given a balance changed by hand in MongoDB and a usage row and an adjustment row deleted from ClickHouse, each is reported with its account or app and amount (exit 1)", async () => {
    const mongo = createMongo(config.MONGODB_URI);
    const clickhouse = clickHouseFor(config);
    const app = records.find((r) => r.level === "app_usage")!;
    const victim = { enterprise: app.enterprise_id, user: app.platform_user_id! };
    const accountKey = `app:${victim.enterprise}:${victim.user}`;
    let deleted: {
      record_id: string;
      enterprise_id: string;
      level: string;
      tokens_used: string;
      billed: string;
    };
    let voided: { record_id: string; enterprise_id: string; level: string; paid: string; billed: string };
    try {
      await mongoLayoutFor(mongo, config)
        .app(victim.enterprise)
        .collection(COLLECTIONS.app.users)
        .updateOne({ _id: victim.user as never }, { $inc: { credited_tokens: 1234 } });
      const table = `${quoteIdent(config.CLICKHOUSE_DATABASE)}.usage_events`;
      const result = await clickhouse.query({
        query: `SELECT record_id, enterprise_id, toString(level) AS level, toString(tokens_used) AS tokens_used, toString(billed_micros) AS billed
                FROM ${table} FINAL WHERE billed_micros > 0 ORDER BY record_id LIMIT 1`,
        format: "JSONEachRow",
      });
      const [row] = (await result.json()) as (typeof deleted)[];
      assert.ok(row !== undefined);
      deleted = row;
      await clickhouse.command({
        query: `ALTER TABLE ${table} DELETE WHERE record_id = {id:String}`,
        query_params: { id: deleted.record_id },
        clickhouse_settings: { mutations_sync: "1" },
      });
      const adjustments = `${quoteIdent(config.CLICKHOUSE_DATABASE)}.adjustments`;
      const voids = await clickhouse.query({
        query: `SELECT record_id, enterprise_id, toString(level) AS level, toString(paid_tokens) AS paid,
                  toString(billed_micros) AS billed
                FROM ${adjustments} FINAL WHERE adjustment = 'void' AND billed_micros < 0 ORDER BY record_id LIMIT 1`,
        format: "JSONEachRow",
      });
      const [voidRow] = (await voids.json()) as (typeof voided)[];
      assert.ok(voidRow !== undefined, "the workload's voids are in the adjustments table");
      voided = voidRow;
      await clickhouse.command({
        query: `ALTER TABLE ${adjustments} DELETE WHERE record_id = {id:String}`,
        query_params: { id: voided.record_id },
        clickhouse_settings: { mutations_sync: "1" },
      });
    } finally {
      await mongo.close();
      await clickhouse.close();
    }
    const file = path.join(dir, "tampered.json");
    const audited = await run(auditCommand, ["--report", file]);
    assert.equal(audited.code, 1, audited.out);
    const report = await reportOf(file);
    const find = (store: string, subject: string, field: string): Difference | undefined =>
      report.differences.find((d) => d.store === store && d.subject === subject && d.field === field);

    const balance = find("mongodb.accounts", accountKey, "credited_tokens");
    assert.ok(balance, JSON.stringify(report.differences, null, 1));
    assert.equal(balance.delta, "1234");
    assert.equal(balance.enterprise_id, victim.enterprise);
    assert.ok(balance.record_ids.length > 0);

    const subject = `${deleted.enterprise_id}/${deleted.level}`;
    const rows = find("clickhouse.usage_events", subject, "records");
    assert.ok(rows, JSON.stringify(report.differences, null, 1));
    assert.equal(rows.delta, "-1");
    assert.deepEqual(rows.record_ids, [deleted.record_id]);
    assert.equal(find("clickhouse.usage_events", subject, "tokens")?.delta, `-${deleted.tokens_used}`);
    assert.equal(find("clickhouse.usage_events", subject, "billed_micros")?.delta, `-${deleted.billed}`);
    // A creator would be paid as if the void never happened: the reversal missing is reported.
    const adjusted = `${voided.enterprise_id}/${voided.level}`;
    const adjustment = find("clickhouse.adjustments", adjusted, "records");
    assert.ok(adjustment, JSON.stringify(report.differences, null, 1));
    assert.equal(adjustment.delta, "-1");
    assert.deepEqual(adjustment.record_ids, [voided.record_id]);
    assert.match(adjustment.explained_by, /1 record\(s\) with no row in adjustments/);
    assert.equal(
      find("clickhouse.adjustments", adjusted, "billed_micros")?.delta,
      (-BigInt(voided.billed)).toString(),
    );
    assert.equal(
      find("clickhouse.adjustments", adjusted, "paid_tokens")?.delta,
      voided.paid === "0" ? undefined : (-BigInt(voided.paid)).toString(),
    );
    // The rollups were not touched: they still agree with the topic.
    assert.equal(report.differences.filter((d) => d.store.startsWith("clickhouse.usage_by")).length, 0);
    // Nothing else differs: exactly the two things changed by hand.
    const subjects = new Set(report.differences.map((d) => `${d.store} ${d.subject}`));
    assert.deepEqual(
      [...subjects].sort(),
      [
        `clickhouse.usage_events ${subject}`,
        `clickhouse.adjustments ${adjusted}`,
        `mongodb.accounts ${accountKey}`,
      ].sort(),
    );
    assert.match(audited.out, /mongodb\.accounts/);
  });
});
