import assert from "node:assert/strict";
import { PassThrough } from "node:stream";
import { after, describe, it } from "node:test";
import type { Config } from "../../pipeline/config.ts";
import { isAgentmeterError } from "../../pipeline/errors.ts";
import { ensureTopics } from "../../pipeline/kafka.ts";
import { createLogger } from "../../pipeline/log.ts";
import { Processor } from "../../pipeline/processor/processor.ts";
import { loadBillingConfig } from "../../pipeline/runtime/billing-config.ts";
import {
  DEAD_LETTER_TOPIC_MAX_BYTES,
  readTopicSettings,
  topicSettingProblems,
  topicSettingWarnings,
} from "../../pipeline/topic-settings.ts";
import { isolatedConfig, testKafka } from "../support/pipeline.ts";

const DAY_MS = 86_400_000;

/** A processor of `config` logging at warn level, and the lines it logs. */
function loggedProcessor(config: Config): { processor: Processor; lines: string[] } {
  const lines: string[] = [];
  const sink = new PassThrough();
  sink.on("data", (chunk: Buffer) => lines.push(...chunk.toString("utf8").split("\n").filter(Boolean)));
  const processor = new Processor(
    config,
    loadBillingConfig(config),
    createLogger("warn", "agentmeter", sink),
  );
  return { processor, lines };
}

/**
 * Retention counts from each record's log time, which a producer may set to when the usage happened: the
 * topics the processor creates keep records until they are billed and audited, and a processor started on
 * an operator's topics that may delete them first says so.
 */
describe("topic retention: what the processor creates, and what it warns of", { timeout: 3 * 60_000 }, () => {
  const admins: { disconnect(): Promise<void> }[] = [];
  after(async () => {
    for (const admin of admins) await admin.disconnect().catch(() => undefined);
  });

  it("the input and dead-letter topics it creates are kept whole, and pass its own checks", async () => {
    const config = await isolatedConfig();
    const admin = testKafka(config).admin();
    admins.push(admin);
    await admin.connect();
    await ensureTopics(admin, config);
    const settings = await readTopicSettings(admin, config);
    assert.equal(settings.get(config.AGENTMETER_INPUT_TOPIC)?.get("retention.ms"), "-1");
    assert.equal(settings.get(config.AGENTMETER_DLQ_TOPIC)?.get("retention.ms"), "-1");
    assert.equal(
      settings.get(config.AGENTMETER_DLQ_TOPIC)?.get("max.message.bytes"),
      String(DEAD_LETTER_TOPIC_MAX_BYTES),
    );
    assert.deepEqual(topicSettingProblems(settings, config), []);
    assert.deepEqual(topicSettingWarnings(settings, config, 35 * 86_400 * 1000), []);
  });

  it("on an operator's topics kept 7 days, the processor starts and warns, naming each topic and the fix", async () => {
    const config = await isolatedConfig();
    const admin = testKafka(config).admin();
    admins.push(admin);
    await admin.connect();
    const week = String(7 * DAY_MS);
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: config.AGENTMETER_INPUT_TOPIC,
          numPartitions: 2,
          configEntries: [{ name: "retention.ms", value: week }],
        },
        {
          topic: config.AGENTMETER_DLQ_TOPIC,
          numPartitions: 1,
          configEntries: [
            { name: "retention.ms", value: week },
            { name: "max.message.bytes", value: String(DEAD_LETTER_TOPIC_MAX_BYTES) },
          ],
        },
      ],
    });
    const { processor, lines } = loggedProcessor(config);
    try {
      await processor.start();
    } finally {
      await processor.stop();
    }
    const warnings = lines
      .map((line) => JSON.parse(line) as { level: number; msg: string })
      .filter((entry) => entry.level === 40 && entry.msg.includes("retention.ms is 604800000"))
      .map((entry) => entry.msg);
    assert.equal(warnings.length, 2, lines.join("\n"));
    assert.match(
      warnings[0]!,
      new RegExp(`^topic ${config.AGENTMETER_INPUT_TOPIC}: .* 3024000000 ms .*retention\\.ms=-1$`),
    );
    assert.match(warnings[1]!, new RegExp(`^topic ${config.AGENTMETER_DLQ_TOPIC}: .*retention\\.ms=-1$`));
  });

  it("on an operator's compacted input topic, the processor refuses to start in one line with the fix, after its warnings", async () => {
    const config = await isolatedConfig();
    const admin = testKafka(config).admin();
    admins.push(admin);
    await admin.connect();
    await admin.createTopics({
      waitForLeaders: true,
      topics: [
        {
          topic: config.AGENTMETER_INPUT_TOPIC,
          numPartitions: 2,
          configEntries: [
            { name: "cleanup.policy", value: "compact" },
            { name: "retention.bytes", value: "1000000" },
          ],
        },
      ],
    });
    const { processor, lines } = loggedProcessor(config);
    try {
      await assert.rejects(
        processor.start(),
        (error: unknown) =>
          isAgentmeterError(error, "CONFIG_INVALID") &&
          new RegExp(
            `^topic ${config.AGENTMETER_INPUT_TOPIC}: cleanup\\.policy is compact, .*cleanup\\.policy=delete$`,
          ).test(error.message),
      );
    } finally {
      await processor.stop();
    }
    assert.ok(
      lines.some((line) =>
        line.includes(`topic ${config.AGENTMETER_INPUT_TOPIC}: retention.bytes is 1000000`),
      ),
      lines.join("\n"),
    );
  });
});
