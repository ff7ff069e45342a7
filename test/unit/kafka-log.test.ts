import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { describe, it } from "node:test";
import { logLevel } from "kafkajs";
import { createLogger, kafkaLogCreator } from "../../pipeline/log.ts";

function capture(level: string) {
  const lines: { level: number; msg: string }[] = [];
  const sink = new PassThrough();
  sink.on("data", (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n").filter(Boolean)) lines.push(JSON.parse(line));
  });
  const log = kafkaLogCreator(createLogger(level, "test", sink))(logLevel.DEBUG);
  const entry = (kafkaLevel: logLevel, message: string, extra: Record<string, unknown> = {}) =>
    log({ namespace: "x", level: kafkaLevel, label: "x", log: { message, timestamp: "", ...extra } });
  return { lines, entry, flush: () => new Promise((resolve) => setImmediate(resolve)) };
}

describe("kafkajs' logs in pino", () => {
  it("one level lower; routine retries and the idempotent producer's EoS notice at debug", async () => {
    const { lines, entry, flush } = capture("info");
    entry(logLevel.WARN, "Limiting retries for the idempotent producer may invalidate EoS guarantees");
    entry(logLevel.ERROR, "Connection error: connect ECONNREFUSED 127.0.0.1:1");
    entry(logLevel.ERROR, "Response Metadata(key: 3, version: 6)", { error: "something else" });
    entry(logLevel.WARN, "a warning of its own");
    await flush();
    assert.deepEqual(
      lines.map((line) => [line.level, line.msg]),
      [
        [40, "Response Metadata(key: 3, version: 6)"],
        [30, "a warning of its own"],
      ],
    );
  });
});
