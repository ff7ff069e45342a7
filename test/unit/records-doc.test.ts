import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { decodeRecord } from "../../schemas/index.ts";
import { RECORDS_DOC, renderRecordsDoc } from "../../scripts/records-doc.ts";

describe("docs/records.md", () => {
  it("is exactly what scripts/records-doc.ts generates from the schemas (run it after changing a schema)", () => {
    assert.equal(
      readFileSync(RECORDS_DOC, "utf8"),
      renderRecordsDoc(),
      "docs/records.md is stale: node --import tsx scripts/records-doc.ts",
    );
  });

  it("has examples that are valid records", () => {
    const examples = [...renderRecordsDoc().matchAll(/```jsonl\n(.*)\n```/g)].map((m) => m[1]!);
    assert.equal(examples.length, 3);
    for (const example of examples) {
      const decoded = decodeRecord(example, { maxBytes: 65_536 });
      assert.ok(decoded.ok, `${example}: ${decoded.ok ? "" : decoded.reason}`);
    }
  });
});
