import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { prng } from "../../pipeline/simulate/workload.ts";
import { epochMs, isoDateTimeSchema } from "../../schemas/index.ts";

/**
 * schemas/time.ts reads the schema's date-time form digit by digit instead of calling Date.parse. On a
 * generated corpus (every year from 0 to 9999 reachable, every month, days past a month's end, fractions
 * of 0 to 9 digits, Z and offsets up to ±23:59) and on broken variants of it, its answer must be
 * Date.parse's, NaN included.
 */
function pad(value: number, width: number): string {
  return String(value).padStart(width, "0");
}

function corpus(): string[] {
  const random = prng(29);
  const int = (below: number) => Math.floor(random() * below);
  const texts: string[] = [
    "1970-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999Z",
    "0000-01-01T00:00:00Z",
    "0000-03-01T00:00:00+23:59",
    "0099-12-31T23:59:59.999+05:30",
    "0100-02-29T00:00:00Z",
    "2000-02-29T12:00:00-00:00",
    "2024-02-29T00:00:00Z",
    "2026-02-29T00:00:00Z",
    "2026-04-31T00:00:00Z",
    "9999-12-31T23:59:59.9999999Z",
    "2026-01-05T09:00:00.1239Z",
    "2026-01-05T09:00:00.Z",
    "2026-01-05T09:00Z",
    "2026-01-05T09:00:00",
    "2026-01-05T09:00:00z",
    "2026-01-05T24:00:00Z",
    "2026-01-05T09:60:00Z",
    "2026-01-05T09:00:60Z",
    "2026-13-05T09:00:00Z",
    "2026-00-05T09:00:00Z",
    "2026-01-00T09:00:00Z",
    "2026-01-05T09:00:00+24:00",
    "2026-01-05T09:00:00+05:60",
    "2026-01-05T09:00:00+0530",
    "2026-01-05 09:00:00Z",
    "+02026-01-05T09:00:00Z",
    "2026-1-05T09:00:00Z",
    "2026-01-05T09:00:00.5+05:30x",
    "",
    "not a time",
  ];
  for (let i = 0; i < 20_000; i++) {
    const year = i % 4 === 0 ? int(10_000) : 1960 + int(100);
    const fraction = int(10);
    const zoneKind = int(3);
    const zone = zoneKind === 0 ? "Z" : `${zoneKind === 1 ? "+" : "-"}${pad(int(24), 2)}:${pad(int(60), 2)}`;
    const text = `${pad(year, 4)}-${pad(1 + int(12), 2)}-${pad(1 + int(31), 2)}T${pad(int(24), 2)}:${pad(int(60), 2)}:${pad(int(60), 2)}${fraction === 0 ? "" : `.${pad(int(10 ** fraction), fraction)}`}${zone}`;
    texts.push(text);
    // The same text with one character changed (most of these are not the schema's form).
    const at = int(text.length);
    texts.push(`${text.slice(0, at)}${"0:-T.Z+x9"[int(9)]}${text.slice(at + 1)}`);
  }
  return texts;
}

describe("epochMs (schemas/time.ts)", () => {
  it("gives Date.parse's answer on a generated corpus of date-times, valid and broken", () => {
    let valid = 0;
    for (const text of corpus()) {
      assert.equal(
        Object.is(epochMs(text), Date.parse(text)),
        true,
        `${text}: ${epochMs(text)} against ${Date.parse(text)}`,
      );
      if (isoDateTimeSchema.safeParse(text).success) valid++;
    }
    assert.ok(valid > 10_000, `valid ${valid}`);
  });

  it("answers a repeated string from its last answer, and a new string anew", () => {
    const first = "2026-01-05T09:00:00.250Z";
    assert.equal(epochMs(first), Date.parse(first));
    assert.equal(epochMs(first), Date.parse(first));
    assert.equal(epochMs("2026-01-05T09:00:01+01:00"), Date.parse("2026-01-05T08:00:01Z"));
  });
});
