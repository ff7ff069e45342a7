import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import kafkajs from "kafkajs";
import { type AgentmeterError, isAgentmeterError } from "../../pipeline/errors.ts";
import type { InputRecordJson } from "../../schemas/index.ts";
import { Agentmeter } from "../../sdk/index.ts";
import { TestPipeline } from "../support/harness.ts";
import { eventually } from "../support/pipeline.ts";

/**
 * A send that fails after kafkajs' retries may or may not have reached the topic. The only safe retry is
 * the same record with the same id (the billing core counts an id once): the error must say which.
 */
describe("SDK: a failed send names its record, and resending it bills it once", {
  timeout: 4 * 60_000,
}, () => {
  let pipeline: TestPipeline;
  let meter: Agentmeter;

  before(async () => {
    pipeline = await TestPipeline.create();
    meter = await Agentmeter.connect({ config: pipeline.config, billing: pipeline.billing, strict: true });
  });

  after(async () => {
    await meter?.close().catch(() => undefined);
    await pipeline?.close();
  });

  async function setMaxMessageBytes(value: string): Promise<void> {
    await (await pipeline.admin()).alterConfigs({
      validateOnly: false,
      resources: [
        {
          type: kafkajs.ConfigResourceTypes.TOPIC,
          name: pipeline.topic,
          configEntries: [{ name: "max.message.bytes", value }],
        },
      ],
    });
  }

  const turn = (i: number) =>
    ({
      type: "usage",
      level: "app_usage",
      enterprise_id: "resend-app",
      mozaiks_user_id: "resend-creator",
      platform_user_id: "user-1",
      workflow_type: "chat_interaction",
      workflow_name: "chat",
      session_id: "s-1",
      chat_id: "c-1",
      agent_usage: { Agent: { prompt_tokens: 100 + i, completion_tokens: 10 } },
      occurred_at: new Date().toISOString(),
    }) as const;

  it("given a broker that refuses the record, when the send fails, then PRODUCE_FAILED names record_id and record; resending that record twice once the broker takes it bills it once", async () => {
    // Smaller than any record batch: the broker refuses every send (MESSAGE_TOO_LARGE) once this applies.
    await setMaxMessageBytes("64");
    const landed: InputRecordJson[] = [];
    let failure: AgentmeterError | undefined;
    for (let i = 0; i < 60 && failure === undefined; i++) {
      try {
        landed.push((await meter.send(turn(i))).record as InputRecordJson);
        await sleep(250); // the topic's new limit is not in force yet
      } catch (error) {
        if (!isAgentmeterError(error, "PRODUCE_FAILED")) throw error;
        failure = error;
      }
    }
    assert.ok(failure !== undefined, "no send failed while the topic refused records");
    const recordId = failure.details?.record_id;
    const record = failure.details?.record as InputRecordJson | undefined;
    assert.equal(typeof recordId, "string");
    assert.equal(record?.record_id, recordId, "the error's record is the one that failed");
    assert.match(failure.message, new RegExp(`record ${recordId}`));
    assert.ok(!landed.some((r) => r.record_id === recordId));

    await setMaxMessageBytes("1048588");
    const resent = await eventually("the resend acknowledged", () =>
      meter.send(record!).then(
        (sent) => sent,
        () => undefined,
      ),
    );
    assert.equal(resent.record_id, recordId, "resent with the same id");
    // A caller unsure whether that resend landed sends it once more: still billed once.
    await meter.send(record!);

    await pipeline.startProcessor();
    await pipeline.caughtUp();
    // What the core computes from the records with the turn once: a second count would differ.
    await pipeline.assertStoresMatch([...landed, record!]);
  });
});
