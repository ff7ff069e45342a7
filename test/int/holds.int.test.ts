import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { runAudit } from "../../pipeline/audit/run-audit.ts";
import { createLogger } from "../../pipeline/log.ts";
import { Processor } from "../../pipeline/processor/processor.ts";
import { type HoldDecision, holdDecisionSchema } from "../../schemas/index.ts";
import { Agentmeter, type HoldGrant } from "../../sdk/index.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";
import { type ProcessorProcess, stopProcess } from "../support/processes.ts";
import { describeDifference } from "../support/verify.ts";

/**
 * Parallel agent turns on one account, decided by its one writer over Kafka: each turn reserves, and a
 * granted one settles with its actual usage; the processor is SIGKILLed while decisions are in flight.
 */
const TURNS = 50;
const HOLD = 1_000;
const COVERED = 10;
const USER = {
  level: "app_usage" as const,
  enterprise_id: "app_holds",
  mozaiks_user_id: "creator_holds",
  platform_user_id: "user_holds",
};

describe("holds over Kafka: 50 parallel turns on a budget for 10, the processor killed mid-run", {
  timeout: 5 * 60_000,
}, () => {
  let pipeline: TestPipeline;
  let meter: Agentmeter;
  const running: ProcessorProcess[] = [];

  before(async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "agentmeter-holds-"));
    const billingFile = path.join(dir, "billing.json");
    // The trial covers exactly COVERED holds; no paid tokens, so a grant past it would overspend.
    writeFileSync(billingFile, JSON.stringify({ app_trial_tokens: { default: HOLD * COVERED } }));
    // Ticks every second, so a leaked hold is expired within a second of its expiry.
    pipeline = await TestPipeline.create({
      env: { AGENTMETER_BILLING_CONFIG: billingFile, AGENTMETER_TICK_INTERVAL_MS: "1000" },
    });
    meter = await Agentmeter.connect({ config: pipeline.config, billing: pipeline.billing });
  });

  after(async () => {
    await meter?.close();
    await Promise.all(running.map((p) => stopProcess(p, "SIGKILL")));
    await pipeline?.close();
  });

  it("grants exactly the holds the budget covers, settles each once, never overspends", async () => {
    const first = pipeline.spawnProcessor("holds-a");
    running.push(first);
    await first.started;

    const turn = async (i: number): Promise<HoldGrant> => {
      const hold = await meter.reserve({ ...USER, chat_id: `chat-${i}`, tokens: HOLD, timeout_ms: 90_000 });
      if (hold.granted) {
        // The actual usage is the hold's size: settling frees nothing another turn could take.
        await meter.settle(hold.hold_id, {
          ...USER,
          workflow_type: "chat_interaction",
          workflow_name: "support",
          session_id: `session-${i}`,
          chat_id: `chat-${i}`,
          agent_usage: { CustomerAgent: { prompt_tokens: 600, completion_tokens: 400 } },
          occurred_at: new Date().toISOString(),
        });
      }
      return hold;
    };
    const turns = Array.from({ length: TURNS }, (_, i) => turn(i));

    // Killed while decisions are being made: its successor re-applies from the committed offsets and
    // answers (the same decisions, deterministically) the turns still waiting.
    await sleep(300);
    await stopProcess(first, "SIGKILL");
    running.splice(running.indexOf(first), 1);
    const second = pipeline.spawnProcessor("holds-b");
    running.push(second);
    await second.started;

    const holds = await Promise.all(turns);
    const granted = holds.filter((hold) => hold.granted);
    assert.equal(granted.length, COVERED, "exactly the holds the trial covers are granted");
    for (const hold of holds.filter((h) => !h.granted))
      assert.equal(hold.reason, "insufficient_tokens", `denied for the budget: ${hold.detail}`);
    assert.equal(new Set(granted.map((hold) => hold.hold_id)).size, COVERED, "each grant is its own hold");

    await meter.flush();
    await pipeline.caughtUp(120_000);
    const account = await eventually("the account document with every settle", async () => {
      const doc = await meter.account(USER);
      return doc !== null && doc.trial_used_tokens === HOLD * COVERED ? doc : undefined;
    });
    assert.equal(account.paid_used_tokens, 0, "nothing beyond the trial was spent");
    assert.ok(
      account.credited_tokens - account.paid_used_tokens >= 0,
      "the paid balance never goes below zero",
    );
    assert.equal(Object.keys(account.holds ?? {}).length, 0, "every granted hold ended (settled)");
    const budget = await meter.budget(USER);
    assert.equal(budget.state.held_tokens, 0, "no tokens held at the end");
  });

  it("expires holds whose clients vanished within a tick of their expiry, on a processor that never saw them", async () => {
    const LEAKER = { ...USER, platform_user_id: "user_leaks" };
    const holds = await Promise.all(
      [1, 2, 3].map((i) =>
        meter.reserve({ ...LEAKER, chat_id: `leak-${i}`, tokens: 500, ttl_ms: 4_000, timeout_ms: 60_000 }),
      ),
    );
    assert.ok(
      holds.every((hold) => hold.granted),
      "the holds are granted",
    );
    const expiresMs = Math.max(...holds.map((hold) => Date.parse(hold.expires_at)));
    // The clients vanish, and so does the processor that granted the holds: its successor starts cold
    // and finds the idle account only through the partition's hold registry.
    for (const processor of running.splice(0)) await stopProcess(processor, "SIGKILL");
    const successor = pipeline.spawnProcessor("holds-c");
    running.push(successor);
    await successor.started;
    const state = await eventually("the holds expired and the tokens back", async () => {
      const budget = await meter.budget(LEAKER);
      return budget.state.held_tokens === 0 && budget.state.as_of !== null ? budget.state : undefined;
    });
    const account = await eventually("the account document without holds", async () => {
      const doc = await meter.account(LEAKER);
      return doc !== null && Object.keys(doc.holds ?? {}).length === 0 ? doc : undefined;
    });
    assert.equal(account.trial_used_tokens, 0, "expired holds cost nothing");
    assert.equal(state.available_tokens, HOLD * COVERED, "every held token is available again");
    // Bounded by the processor's restart: within the test's wait, which is tens of seconds past expiry.
    assert.ok(Date.now() - expiresMs < 60_000, "expired soon after their expiry");
  });

  it("audit: every hold decision on the reply topic is the one the billing core recomputes; a forged one is found", async () => {
    // The turns above ran across a SIGKILL and three processors; the reply topic may hold a decision twice.
    // The last one stops for good, and one without ticks (which would keep appending to the topic the
    // audit reads) applies what is left, so every store holds the whole topic.
    for (const processor of running.splice(0)) await stopProcess(processor, "SIGKILL");
    const last = new Processor(
      { ...pipeline.config, AGENTMETER_TICK_INTERVAL_MS: 0 },
      pipeline.billing,
      createLogger("warn"),
    );
    await last.start();
    try {
      await pipeline.caughtUp(120_000);
    } finally {
      await last.stop();
    }
    const audit = () =>
      runAudit({
        config: pipeline.config,
        billing: pipeline.billing,
        range: { kind: "all" },
        logger: createLogger("silent"),
        workers: 0,
      });
    const clean = await audit();
    const row = clean.summary.find((entry) => entry.store === "kafka.hold_decisions");
    assert.ok(row !== undefined, "a complete audit checks the hold decisions");
    assert.ok(
      clean.counts.hold_decisions >= TURNS + 3,
      `a decision per hold record (${clean.counts.hold_decisions})`,
    );
    assert.equal(
      row.checked,
      clean.counts.hold_decisions,
      "every decision the core made is on the reply topic",
    );
    assert.deepEqual(clean.differences.map(describeDifference), [], "the stores and the decisions agree");
    assert.deepEqual(clean.holds, {
      topic: pipeline.config.AGENTMETER_HOLDS_TOPIC,
      unverifiable: 0,
      outside_range: 0,
      undecodable: 0,
    });

    // A decision granting a hold the budget denied, as a buggy or hostile writer of the reply topic would.
    const denied = await firstDenied(pipeline);
    await (await pipeline.producer()).send({
      topic: pipeline.config.AGENTMETER_HOLDS_TOPIC,
      messages: [
        {
          key: denied.hold_id,
          value: JSON.stringify({ ...denied, granted: true, reason: null, detail: null }),
        },
      ],
    });
    const forged = await audit();
    assert.deepEqual(
      forged.differences.map((d) => `${d.store} ${d.subject} ${d.field} ${d.expected} -> ${d.actual}`),
      [
        `kafka.hold_decisions ${denied.hold_id} granted false -> true`,
        `kafka.hold_decisions ${denied.hold_id} reason insufficient_tokens -> null`,
      ],
    );
  });
});

/** A denied decision as the processor published it, read back from the reply topic. */
async function firstDenied(pipeline: TestPipeline): Promise<HoldDecision> {
  const found: HoldDecision[] = [];
  const consumer = pipeline.kafka().consumer({ groupId: `holds-read-${Date.now()}` });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic: pipeline.config.AGENTMETER_HOLDS_TOPIC, fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        const decision = holdDecisionSchema.parse(JSON.parse(message.value?.toString("utf8") ?? "null"));
        if (!decision.granted && decision.reason === "insufficient_tokens") found.push(decision);
      },
    });
    return await eventually("a denied decision on the reply topic", async () => found[0]);
  } finally {
    await consumer.disconnect();
  }
}
