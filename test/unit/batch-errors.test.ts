import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import kafkajs from "kafkajs";
import { createLogger } from "../../pipeline/log.ts";
import { restartingError } from "../../pipeline/processor/processor.ts";

/** kafkajs' own test of an eachBatch error (consumer/index.js onCrash): restart only if retriable. */
function kafkajsRestarts(error: Error): boolean {
  let cause: unknown = error;
  while ((cause as { cause?: unknown }).cause !== undefined) cause = (cause as { cause: unknown }).cause;
  return (
    error.name === "KafkaJSNumberOfRetriesExceeded" || (cause as { retriable?: unknown }).retriable === true
  );
}

describe("a failed batch restarts the consumer instead of stopping it", () => {
  it("given the producer's non-retriable OUT_OF_ORDER_SEQUENCE_NUMBER, then kafkajs would stop for good, and after restartingError it restarts", () => {
    const original = new kafkajs.KafkaJSNonRetriableError(
      Object.assign(new kafkajs.KafkaJSProtocolError("The broker received an out of order sequence number"), {
        retriable: false,
      }),
    );
    assert.equal(kafkajsRestarts(original), false, "as kafkajs sees the original");
    const logged: string[] = [];
    const sink = new Writable({
      write(chunk, _encoding, done) {
        logged.push(String(chunk));
        done();
      },
    });
    const thrown = restartingError(3, original, createLogger("info", "test", sink));
    assert.equal(kafkajsRestarts(thrown), true);
    assert.match(thrown.message, /partition 3: batch failed \(.*out of order sequence number\)/);
    assert.match(logged.join(""), /batch failed: the consumer restarts/, "the original is logged");
  });
});
