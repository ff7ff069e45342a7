import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { progressLine } from "../../pipeline/cli/io.ts";

function stream(isTTY: boolean) {
  const writes: string[] = [];
  return { writes, stderr: { write: (text: string) => writes.push(text), ...(isTTY ? { isTTY } : {}) } };
}

describe("progressLine", () => {
  test("Given a terminal, Then each update rewrites the line in place and the end closes it", () => {
    const { writes, stderr } = stream(true);
    const progress = progressLine(stderr, 60_000);
    progress.update("1/3");
    progress.update("2/3");
    progress.end("3/3");
    assert.deepEqual(writes, ["\r1/3", "\r2/3", "\r3/3\n"]);
  });

  test("Given a log or a pipe, Then updates are whole lines, at most one per interval, and the last is never lost", () => {
    const { writes, stderr } = stream(false);
    const progress = progressLine(stderr, 60_000);
    progress.update("1/3");
    progress.update("2/3");
    progress.end();
    assert.deepEqual(writes, ["1/3\n", "2/3\n"]);
    assert.ok(writes.every((text) => !text.includes("\r")));
  });

  test("Given a log, When the end names the final state, Then it is the last line", () => {
    const { writes, stderr } = stream(false);
    const progress = progressLine(stderr, 0);
    progress.update("1/2");
    progress.end("2/2 done");
    assert.deepEqual(writes, ["1/2\n", "2/2 done\n"]);
  });
});
