import { setTimeout as sleep } from "node:timers/promises";
import type { Admin } from "kafkajs";

/**
 * The topic's end offsets. A topic created a moment ago (by this connection's own ensureTopics) can
 * answer "not the leader" until its metadata settles: retriable errors are retried for a few seconds.
 */
export async function endOffsets(admin: Admin, topic: string): ReturnType<Admin["fetchTopicOffsets"]> {
  let delay = 100;
  for (let attempt = 1; ; attempt++) {
    try {
      return await admin.fetchTopicOffsets(topic);
    } catch (error) {
      if (attempt >= 10 || (error as { retriable?: boolean }).retriable !== true) throw error;
      await sleep(delay);
      delay = Math.min(delay * 2, 2_000);
    }
  }
}
