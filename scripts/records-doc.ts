/**
 * Generates docs/records.md, the field-by-field reference of the input records, FROM the zod schemas in
 * schemas/: names, types, required or not, and limits come from the schemas (through zod's JSON Schema
 * conversion); only the one-line descriptions are written here. test/unit/records-doc.test.ts fails when
 * the committed file differs from what this prints, so the reference cannot drift from the schemas.
 *
 *   node --import tsx scripts/records-doc.ts          # rewrite docs/records.md
 *   node --import tsx scripts/records-doc.ts --check  # exit 1 if docs/records.md is stale
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { z } from "zod";
import {
  agentUsageSchema,
  creditRecordSchema,
  DEFAULT_MAX_RECORD_BYTES,
  holdRecordSchema,
  MAX_AGENTS_PER_RECORD,
  RESERVED_AGENT_NAMES,
  refundRecordSchema,
  releaseRecordSchema,
  sessionRecordSchema,
  tickRecordSchema,
  usageRecordSchema,
  voidRecordSchema,
} from "../schemas/index.ts";

export const RECORDS_DOC = path.join(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
  "docs",
  "records.md",
);

/** One line per field. A field a schema gains without a line here stops the generator (see `describe`). */
const DESCRIPTIONS: Record<string, Record<string, string>> = {
  common: {
    type: "Which record this is; selects the schema.",
    schema_version: "Version of the record format. Absent means 1; any other version is rejected.",
    record_id:
      "Unique per account: a repeated id is ignored (`duplicate_ignored`) within the dedupe horizon. The SDK fills it with a UUIDv7.",
    level:
      "`platform`: a creator's own usage, billed to the creator. `app_usage`: an end user of a deployed app, billed to the end user and split 70/30.",
    enterprise_id:
      "The app. Lower-case, because it becomes part of a MongoDB database name (`MozaiksApp_{enterprise_id}`).",
    mozaiks_user_id: "The app's creator (for `platform`: the account itself).",
    platform_user_id:
      "The end user. Required when `level` is `app_usage`, must be absent when it is `platform`.",
    occurred_at:
      "Event time, with a zone (`Z` or `+hh:mm`). Picks the effective price and drives the dedupe horizon; bounded against the Kafka timestamp.",
    session_id: "The agent session.",
    chat_id: "The chat; pauses and resumes are per chat.",
    workflow_name: "The workflow's name, as the runtime knows it.",
  },
  usage: {
    user_id: "The user inside the workflow, if not the account's user. Not used for billing.",
    workflow_type: "Kind of workflow, e.g. `app_generation`, `chat_interaction`.",
    model: "Default model for agents that do not name their own; the config's default model when absent.",
    agent_usage: `Usage per agent, keyed by agent name: 1 to ${MAX_AGENTS_PER_RECORD} agents; an agent name is 1-64 chars of A-Z a-z 0-9 _ - and not ${[...RESERVED_AGENT_NAMES].map((n) => `\`${n}\``).join(", ")}. Each value is an agent usage object (below).`,
    started_at: "When the session started (analytics only).",
    ended_at: "When the session ended (analytics only).",
    connection_state: "The runtime's connection state at the time of the record (analytics only).",
    hold_id:
      "The open hold this usage settles: the usage is billed as always (never the hold's estimate) and the rest of the hold is released. A hold that is not open changes nothing (`hold_not_open`); the usage is billed all the same.",
  },
  agent: {
    prompt_tokens: "Input tokens of this agent's LLM calls.",
    completion_tokens: "Output tokens of this agent's LLM calls.",
    cached_prompt_tokens:
      "Input tokens read from the provider's prompt cache, counted BESIDE `prompt_tokens` (subtract them from a provider's prompt count that includes them). Priced at the model's cached price, else its prompt price. Absent = 0.",
    reasoning_tokens:
      "Reasoning (thinking) tokens, counted BESIDE `completion_tokens`. Priced at the model's reasoning price, else its completion price. Absent = 0.",
    audio_tokens:
      "Audio tokens, counted beside prompt and completion. Priced at the model's audio price; a model without one rejects the record (`UNPRICED_TOKEN_CLASS`). Absent = 0.",
    model: "This agent's model, overriding the record's `model`.",
    response_time_ms: "Response time (analytics only).",
    message_count: "Messages exchanged (analytics only).",
  },
  credit: {
    kind: "`top_up`: tokens bought (adds to the paid balance; `amount_micros` is what was paid). `grant`: tokens given, free (its own bucket, burned before the allowance and the paid balance, never billed; `amount_micros` on it is not counted as paid). `budget_set`: sets the allowance (app trial or platform allowance) to `tokens`; tokens already used stay used.",
    tokens: "Tokens credited, or the new allowance for `budget_set`.",
    amount_micros:
      "Money paid, in micro-units of the currency (1,000,000 = 1.00). A string of digits keeps large amounts exact.",
    priority:
      "`grant` only. Burn order: lower priority first, then earliest `expires_at`, then oldest, then `record_id`. Default 0.",
    effective_at:
      "`grant` only: spendable from the first record of the account at or after this event time. Default `occurred_at`.",
    expires_at:
      "`grant` only: at the first record (or tick) past it, what is left is forfeited (`grant_expired`). After `effective_at` (else `occurred_at`).",
  },
  hold: {
    chat_id: "The chat the agent turn belongs to.",
    hold_id:
      "The hold's id within the account: the decision, the settling usage record and the release name it. Used once: a hold id that ended is denied (`hold_id_ended`); the same id while open repeats its grant.",
    tokens:
      "Tokens to reserve: the turn's estimate, all models together (budgets count tokens whatever the model).",
    expires_at:
      "When the hold lapses if neither settled nor released: it expires at the first record of the account, or tick, past it. After `occurred_at`, at most `holds.max_seconds` (default 3,600 s) after it.",
  },
  release: {
    hold_id: "The open hold to give back unused.",
  },
  void: {
    target_record_id:
      "The usage record of this account to cancel. It must still be within the correction window (`corrections.window_seconds`, default 30 days of event time) and not voided already.",
  },
  refund: {
    target_record_id:
      "The usage record of this account whose billed amount is refunded, within the correction window.",
    amount_micros:
      "Money returned, in micro-units (a string of digits keeps large amounts exact): more than 0, at most what the record billed minus what was refunded of it before.",
  },
  tick: {
    record_id: "Unique per tick (the processor makes one per partition and interval).",
    partition: "The input partition the tick was written to; its key lands there.",
    occurred_at:
      "The processor's clock when it wrote the tick: the event time holds on this partition are expired at.",
  },
  session: {
    event:
      "Lifecycle event: `start`, `pause`, `resume` (a paused chat continues if the account has tokens), `finalize`.",
    pause_reason: "Only with `event: pause`; `user_requested` when absent.",
  },
};

type JsonSchema = {
  type?: string;
  const?: unknown;
  enum?: unknown[];
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  anyOf?: JsonSchema[];
  default?: unknown;
  properties?: Record<string, JsonSchema>;
  required?: string[];
};

const number = (n: number) => n.toLocaleString("en-US");

/** `A-Za-z0-9_:-` → `A-Z a-z 0-9 _ : -`. */
function charset(set: string): string {
  const parts: string[] = [];
  for (let i = 0; i < set.length; i++) {
    if (set[i + 1] === "-" && i + 2 < set.length) {
      parts.push(`${set[i]}-${set[i + 2]}`);
      i += 2;
    } else {
      parts.push(set[i]!);
    }
  }
  return parts.join(" ");
}

/** The id patterns read `^[first][rest]{0,N}$`: say it in words; anything else is shown as it is. */
function patternLimits(pattern: string): string {
  const id = /^\^\[([^\]]+)\]\[([^\]]+)\]\{0,(\d+)\}\$$/.exec(pattern);
  if (id !== null) {
    return `1-${Number(id[3]) + 1} chars of ${charset(id[2]!)}, starting with ${charset(id[1]!)}`;
  }
  const digits = /^\^\[0-9\]\{1,(\d+)\}\$$/.exec(pattern);
  if (digits !== null) return `1-${digits[1]} digits`;
  return `matches \`${pattern}\``;
}

function typeAndLimits(schema: JsonSchema): { type: string; limits: string } {
  if (schema.anyOf !== undefined) {
    const parts = schema.anyOf.map(typeAndLimits);
    return {
      type: parts.map((p) => p.type).join(" or "),
      limits: parts.map((p) => `${p.type}: ${p.limits}`).join("; "),
    };
  }
  if (schema.const !== undefined) {
    const limits =
      schema.default === undefined
        ? "exactly this value"
        : `exactly this value (default ${JSON.stringify(schema.default)})`;
    return { type: `\`${JSON.stringify(schema.const)}\``, limits };
  }
  if (schema.enum !== undefined) {
    return { type: "string", limits: `one of ${schema.enum.map((v) => `\`${String(v)}\``).join(", ")}` };
  }
  if (schema.format === "date-time") {
    return { type: "string", limits: "ISO 8601 date-time with a zone, e.g. `2025-07-28T10:15:00Z`" };
  }
  if (schema.type === "string") {
    return { type: "string", limits: schema.pattern === undefined ? "-" : patternLimits(schema.pattern) };
  }
  if (schema.type === "integer" || schema.type === "number") {
    const range =
      schema.minimum !== undefined && schema.maximum !== undefined
        ? `${number(schema.minimum)} to ${number(schema.maximum)}`
        : schema.minimum !== undefined
          ? `at least ${number(schema.minimum)}`
          : "-";
    return { type: schema.type, limits: range };
  }
  if (schema.type === "object") return { type: "object", limits: "-" };
  return { type: "object", limits: "-" };
}

function toJson(schema: z.ZodType): JsonSchema {
  return z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonSchema;
}

function describe(group: string, field: string): string {
  const text = DESCRIPTIONS[group]?.[field] ?? DESCRIPTIONS.common?.[field];
  if (text === undefined) {
    throw new Error(`scripts/records-doc.ts: no description for ${group}.${field}; add one to DESCRIPTIONS`);
  }
  return text;
}

const escapeCell = (cell: string) => cell.replaceAll("|", "\\|");

function fieldTable(group: string, schema: z.ZodType, overrides: Record<string, string> = {}): string {
  const json = toJson(schema);
  const required = new Set(json.required ?? []);
  const rows = Object.entries(json.properties ?? {}).map(([field, property]) => {
    const { type, limits } = typeAndLimits(property);
    const needed = required.has(field) ? "yes" : field === "schema_version" ? "no (default 1)" : "no";
    return [
      `\`${field}\``,
      overrides[field] ?? type,
      needed,
      limits === "-" && overrides[field] !== undefined ? "see below" : limits,
      describe(group, field),
    ];
  });
  const header = ["field", "type", "required", "limits", "description"];
  // Padded to column width, as biome formats markdown tables, so `biome check` leaves the file as is.
  const cells = [header, ...rows.map((row) => row.map(escapeCell))];
  const widths = header.map((_, column) => Math.max(...cells.map((row) => row[column]!.length)));
  const line = (row: string[]) =>
    `| ${row.map((cell, column) => cell.padEnd(widths[column]!)).join(" | ")} |`;
  return [line(cells[0]!), line(widths.map((width) => "-".repeat(width))), ...cells.slice(1).map(line)].join(
    "\n",
  );
}

export function renderRecordsDoc(): string {
  return `<!-- Generated by \`node --import tsx scripts/records-doc.ts\` from the zod schemas in schemas/. Do not edit: edit the schemas (or the descriptions in the script) and run it again. test/unit/records-doc.test.ts fails when this file is stale. -->

# Input records

Every record on the input topic (\`agentmeter.usage.v1\`) is one JSON object, told apart by \`type\`:
**usage**, **credit** and **session**, the holds' **hold** and **release** ([holds.md](holds.md)), the
operator's corrections **void** and **refund**, and the processor's own **tick**. This page lists every field of each. The rules of what the records do are in
[billing.md](billing.md); the SDK ([sdk.md](sdk.md)) fills \`record_id\` and \`occurred_at\` for you and
validates with the same schemas before sending.

For all of them (the tick's key aside, see below):

- **Strict**: a field not listed here is rejected (\`RECORD_INVALID\` naming it), including the fields the
  processor computes (\`tokens_used\`, \`cost\`, \`billing_target\`, ...): it computes those itself and never trusts them.
- **Kafka key**: the account key, \`platform:{mozaiks_user_id}\` for \`platform\` and
  \`app:{enterprise_id}:{platform_user_id}\` for \`app_usage\` (\`accountKeyOf\` in schemas/). A record under
  another key is dead-lettered (\`RECORD_KEY_MISMATCH\`).
- **Size**: at most ${number(DEFAULT_MAX_RECORD_BYTES)} bytes of JSON by default (\`AGENTMETER_MAX_RECORD_BYTES\`).
- **Ids** never contain \`.\`, \`/\`, \`$\`, spaces or NUL (they become MongoDB names and keys); user ids have no \`:\`
  because the account key joins them with \`:\`.
- **Numbers are exact**: a number literal that denotes a fraction but reads as an integer in JSON's
  doubles (\`10.0000000000000001\`, \`4503599627370497.5\`, \`1.5e-400\`) refuses the whole record
  (\`RECORD_INVALID\`, naming the literal), rather than billing the integer it rounds to. \`1e6\` and \`1.0\`
  are integers and pass; JSON writers that print numbers as they read back (\`JSON.stringify\`, Python's
  \`json\`) never write such a literal. Write large amounts as decimal strings.
- A record that fails validation goes to the dead-letter topic with the reason; \`agentmeter compute FILE\`
  reports it as \`line N: CODE: reason\`.
- **Fastest form**: the fields in the order of the tables below, \`schema_version\` included. The decoder
  then keeps the parsed object as it is. Any other order is just as valid and costs a copy (about 1 µs a
  record), as does a record with \`amount_micros\` (the amount becomes a bigint). The SDK writes this form.

## usage

What an agent runtime reports after LLM calls: tokens per agent, priced by model at \`occurred_at\`.

${fieldTable("usage", usageRecordSchema, { agent_usage: "object" })}

### agent usage (each value of \`agent_usage\`)

${fieldTable("agent", agentUsageSchema)}

Example:

\`\`\`jsonl
{"type": "usage", "record_id": "p-usage-1", "level": "platform", "enterprise_id": "app_456", "mozaiks_user_id": "user_123", "workflow_type": "app_generation", "workflow_name": "Generator", "session_id": "sess_abc123", "chat_id": "chat_def456", "agent_usage": {"ConceptAgent": {"prompt_tokens": 5000, "completion_tokens": 3000}}, "occurred_at": "2025-07-28T10:15:00Z"}
\`\`\`

## credit

Tokens added to an account (bought or given), or its allowance set.

${fieldTable("credit", creditRecordSchema)}

Example:

\`\`\`jsonl
{"type": "credit", "record_id": "p-topup-1", "kind": "top_up", "level": "platform", "enterprise_id": "app_456", "mozaiks_user_id": "user_123", "tokens": 50000, "amount_micros": "1500000", "occurred_at": "2025-07-28T09:30:00Z"}
\`\`\`

## session

A chat session's lifecycle from the agent runtime: start, pause, resume, finalize.

${fieldTable("session", sessionRecordSchema)}

Example:

\`\`\`jsonl
{"type": "session", "record_id": "s-pause-1", "event": "pause", "level": "app_usage", "enterprise_id": "app_456", "mozaiks_user_id": "user_123", "platform_user_id": "enduser_789", "session_id": "sess_1", "chat_id": "chat_1", "workflow_name": "chat", "pause_reason": "user_requested", "occurred_at": "2025-07-28T11:00:00Z"}
\`\`\`

## hold

Tokens reserved for one agent turn, granted or denied by the account's writer (the \`hold_decision\`
output). It ends once: settled by the usage record naming its \`hold_id\`, released, or expired.

${fieldTable("hold", holdRecordSchema)}

Example:

\`\`\`json
{"type": "hold", "record_id": "h-1", "level": "app_usage", "enterprise_id": "app_456", "mozaiks_user_id": "user_123", "platform_user_id": "enduser_789", "chat_id": "chat_1", "hold_id": "turn-1", "tokens": 4000, "expires_at": "2025-07-28T11:02:00Z", "occurred_at": "2025-07-28T11:00:00Z"}
\`\`\`

## release

An open hold given back unused (the turn failed or was cancelled).

${fieldTable("release", releaseRecordSchema)}

Example:

\`\`\`json
{"type": "release", "record_id": "r-1", "level": "app_usage", "enterprise_id": "app_456", "mozaiks_user_id": "user_123", "platform_user_id": "enduser_789", "hold_id": "turn-1", "occurred_at": "2025-07-28T11:00:30Z"}
\`\`\`

## void

Cancels one usage record (operator only: signed like credits). Its tokens go back where they were drawn
from (allowance or paid balance; of the paid tokens, only the share refunds have not already paid back as
money) and what is left of its billed amount, creator share and platform fee is reversed exactly, as an \`adjustment\` output; the usage record itself is never edited. Outside the
window: dead-lettered \`CORRECTION_WINDOW_PASSED\`; an unknown target \`CORRECTION_TARGET_UNKNOWN\`; a
voided one \`CORRECTION_INVALID\` ([billing.md](billing.md), Corrections).

${fieldTable("void", voidRecordSchema)}

Example:

\`\`\`jsonc
{"type": "void", "record_id": "a-void-1", "level": "app_usage", "enterprise_id": "app_456", "mozaiks_user_id": "user_123", "platform_user_id": "enduser_789", "target_record_id": "a-usage-3", "occurred_at": "2025-07-29T09:00:00Z"}
\`\`\`

## refund

Returns money billed for one usage record to whoever paid it (operator only: signed like credits). The
creator share and platform fee are reversed pro rata with the split's rule (floor to the creator, the
remainder to the platform) on the running total refunded. More than is left: \`CORRECTION_INVALID\`.

${fieldTable("refund", refundRecordSchema)}

Example:

\`\`\`jsonc
{"type": "refund", "record_id": "a-refund-1", "level": "app_usage", "enterprise_id": "app_456", "mozaiks_user_id": "user_123", "platform_user_id": "enduser_789", "target_record_id": "a-usage-4", "amount_micros": "2503", "occurred_at": "2025-07-29T09:05:00Z"}
\`\`\`

## tick

Written by the processor, not by producers: event time for a partition, so holds expire on idle
partitions too and a replay expires them at the same records. It belongs to no account. Its Kafka key is
\`tick:{partition}:{salt}\`, the salt (base 36, the first from 0 up) chosen so that the key's murmur2
partition is \`partition\` (\`tickKeyFor\` in schemas/keys.ts).

${fieldTable("tick", tickRecordSchema)}

Example:

\`\`\`json
{"type": "tick", "record_id": "tick-0-1753700400000", "partition": 0, "occurred_at": "2025-07-28T11:00:00Z"}
\`\`\`
`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const text = renderRecordsDoc();
  if (process.argv.includes("--check")) {
    let current = "";
    try {
      current = readFileSync(RECORDS_DOC, "utf8");
    } catch {
      // Missing counts as stale.
    }
    if (current !== text) {
      process.stderr.write("docs/records.md is stale: run node --import tsx scripts/records-doc.ts\n");
      process.exitCode = 1;
    }
  } else {
    writeFileSync(RECORDS_DOC, text);
    process.stderr.write(`wrote ${path.relative(process.cwd(), RECORDS_DOC)}\n`);
  }
}
