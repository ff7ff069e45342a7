import assert from "node:assert/strict";
import net from "node:net";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { loadBillingConfig } from "../../pipeline/runtime/billing-config.ts";
import { clickHouseFor } from "../../pipeline/runtime/clients.ts";
import { generateWorkload } from "../../pipeline/simulate/workload.ts";
import type { SessionSummary, UsageOutcome } from "../../schemas/index.ts";
import type { ClickHouseClient } from "../../sinks/clickhouse/client.ts";
import { expectedRun } from "../support/expected.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";
import { getServices } from "../support/services.ts";

type ProxyMode = "pass" | "lose-responses" | "down";

/**
 * A TCP proxy in front of the shared ClickHouse, so this test can take "its" ClickHouse away without
 * touching the server others use. `lose-responses`: requests reach the server (inserts land) but the
 * answer never comes back, the worst case for a retry. `down`: connections are refused.
 */
class ClickHouseProxy {
  private server: net.Server | undefined;
  private readonly sockets = new Set<net.Socket>();
  mode: ProxyMode = "pass";
  port = 0;
  /** Answers the server gave that the client never got, and how many of them were to usage inserts. */
  lostResponses = 0;
  lostUsageInserts = 0;

  constructor(private readonly upstream: { host: string; port: number }) {}

  async listen(): Promise<void> {
    const server = net.createServer((client) => this.accept(client));
    await new Promise<void>((resolve) => server.listen(this.port, "127.0.0.1", resolve));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect(this.upstream);
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on("close", () => this.sockets.delete(socket));
      socket.on("error", () => undefined);
    }
    let request = "";
    client.on("data", (chunk) => {
      if (chunk.subarray(0, 5).toString("latin1") === "POST ") request = chunk.toString("latin1", 0, 2_000);
      upstream.write(chunk);
    });
    upstream.on("data", (chunk) => {
      if (this.mode === "pass") client.write(chunk);
      // The server has done the work; the client never learns it.
      else {
        this.lostResponses++;
        if (/INSERT\+INTO\+\S*usage_(ingest|events)/.test(request)) this.lostUsageInserts++;
        client.destroy();
      }
    });
    client.on("close", () => upstream.destroy());
    upstream.on("close", () => client.destroy());
  }

  async setMode(mode: ProxyMode): Promise<void> {
    this.mode = mode;
    if (mode === "down" && this.server !== undefined) {
      const server = this.server;
      this.server = undefined;
      for (const socket of this.sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    } else if (mode !== "down" && this.server === undefined) {
      await this.listen();
    }
  }

  async close(): Promise<void> {
    await this.setMode("down");
  }
}

describe("ClickHouse down or losing answers mid-run: the processor waits and retries, nothing is lost or doubled", () => {
  const records = [...generateWorkload({ seed: 23, records: 1_500, apps: 3, usersPerApp: 8, runId: "out" })];
  // The defaults, as the processor's: this test's configuration names no billing file.
  const { outputs } = expectedRun(records, loadBillingConfig({}));
  const usage = outputs.filter((o): o is UsageOutcome => o.kind === "usage_outcome");
  const summaries = outputs.filter((o): o is SessionSummary => o.kind === "session_summary");
  let pipeline: TestPipeline;
  let proxy: ClickHouseProxy;
  let direct: ClickHouseClient;
  let db: string;

  async function scalar(query: string): Promise<string> {
    const result = await direct.query({ query, format: "JSONEachRow" });
    const [row] = await result.json<Record<string, string>>();
    return String(Object.values(row ?? {})[0]);
  }

  before(async () => {
    const services = await getServices();
    const upstream = new URL(services.clickhouseUrl);
    proxy = new ClickHouseProxy({ host: upstream.hostname, port: Number(upstream.port) });
    await proxy.listen();
    pipeline = await TestPipeline.create({ env: { CLICKHOUSE_URL: `http://127.0.0.1:${proxy.port}` } });
    db = pipeline.config.CLICKHOUSE_DATABASE;
    // Past the proxy: what the server holds, whatever the proxy does to the processor's requests.
    direct = clickHouseFor({ ...pipeline.config, CLICKHOUSE_URL: services.clickhouseUrl });
    await pipeline.startProcessor("error");
    const third = Math.ceil(records.length / 3);
    // Given a processor writing normally
    await pipeline.produce(records.slice(0, third));
    // Wait for the whole first third to be committed, not only its usage rows: a flush still writing
    // its session summaries when the answers start to be lost would retry only those (its usage rows
    // are past the watermark), and no usage insert would be put to the test. Once idle, every
    // partition's watermark is known, so the next ClickHouse request of each is a usage insert.
    const firstIds = new Set(records.slice(0, third).map((record) => record.record_id));
    const firstUsage = usage.filter((outcome) => firstIds.has(outcome.record_id)).length;
    await eventually("the first third's rows in ClickHouse", async () =>
      Number(await scalar(`SELECT count() FROM ${db}.usage_events`)) === firstUsage ? true : undefined,
    );
    await pipeline.caughtUp(60_000);
    // When ClickHouse takes inserts but its answers are lost, while records keep coming
    await proxy.setMode("lose-responses");
    await pipeline.produce(records.slice(third, 2 * third));
    await sleep(3_000);
    // And then it goes down altogether
    await proxy.setMode("down");
    await pipeline.produce(records.slice(2 * third));
    await sleep(3_000);
    // And comes back
    await proxy.setMode("pass");
  });

  after(async () => {
    await pipeline?.close();
    await proxy?.close();
    await direct?.close();
  });

  it("the outage was real: usage inserts ran on the server but their answers were lost, so they were retried", () => {
    assert.ok(
      proxy.lostUsageInserts > 0,
      `no usage insert lost its answer (${proxy.lostResponses} answers lost)`,
    );
  });

  it("then ClickHouse ends with exactly one row per usage record, even without FINAL", async () => {
    await eventually(
      "every usage row",
      async () =>
        Number(await scalar(`SELECT count() FROM ${db}.usage_events`)) >= usage.length ? true : undefined,
      120_000,
    );
    // Let any retry still in flight land (or be dropped) before counting.
    await sleep(1_000);
    assert.equal(Number(await scalar(`SELECT count() FROM ${db}.usage_events`)), usage.length);
    assert.equal(Number(await scalar(`SELECT uniqExact(record_id) FROM ${db}.usage_events`)), usage.length);
    await eventually("every session summary", async () =>
      Number(await scalar(`SELECT count() FROM ${db}.session_summaries FINAL`)) === summaries.length
        ? true
        : undefined,
    );
  });

  it("then the rollups were not doubled by the retried inserts", async () => {
    const billed = usage.reduce((total, outcome) => total + outcome.billed_micros, 0n);
    assert.equal(await scalar(`SELECT sum(records) FROM ${db}.usage_by_minute`), String(usage.length));
    assert.equal(await scalar(`SELECT sum(records) FROM ${db}.usage_by_hour`), String(usage.length));
    assert.equal(
      await scalar(`SELECT toString(sum(billed_micros)) FROM ${db}.usage_by_hour`),
      String(billed),
    );
    const calls = usage.reduce((total, outcome) => total + Object.keys(outcome.agents).length, 0);
    assert.equal(await scalar(`SELECT sum(calls) FROM ${db}.agent_usage_by_hour`), String(calls));
  });

  it("then MongoDB holds the billing core's figures and ClickHouse agrees with it account by account", async () => {
    // Rows per account are among the harness's checks (test/support/verify.ts).
    await pipeline.caughtUp();
    await pipeline.assertStoresMatch(records);
  });
});
