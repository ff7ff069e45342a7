import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { main } from "../../pipeline/cli/main.ts";

const root = fileURLToPath(new URL("../../", import.meta.url));

describe("docs/billing.md worked examples", () => {
  test("Given every compute-table block of docs/billing.md, Then each is exactly what compute prints for its fixture", async () => {
    const docs = readFileSync(`${root}docs/billing.md`, "utf8");
    const blocks = [...docs.matchAll(/<!-- compute-table: ([^\n]+?) -->\n```text\n([\s\S]*?)```/g)];
    assert.ok(blocks.length >= 4, "the worked example, grants, periods and corrections");
    for (const [, args, text] of blocks) {
      // FILE, then options; paths are relative to the repository root.
      const argv = args!.split(" ").map((arg) => (arg.startsWith("test/") ? `${root}${arg}` : arg));
      let stdout = "";
      await main(["compute", ...argv, "--format", "table"], {
        stdin: Readable.from([""]),
        stdout: { write: (chunk: string) => (stdout += chunk) },
        stderr: { write: () => undefined },
      });
      assert.equal(text!.trimEnd(), stdout.trimEnd(), args);
    }
  });
});
