import { z } from "zod";
import { schemaVersionSchema } from "./common.ts";
import { opaqueIdSchema } from "./ids.ts";
import { isoDateTimeSchema } from "./time.ts";

/** Partition numbers a tick may name (Kafka's own bound on partitions per topic is far below). */
export const MAX_TICK_PARTITION = 1_000_000;

/**
 * Event time for a partition that has no records: the processor appends one to each input partition
 * it owns on a timer, so holds expire on idle partitions too. It is in the topic, so a replay and the
 * audit expire holds at exactly the same records as the live run did. It belongs to no account: its
 * Kafka key is a tick key (schemas/keys.ts, tickKeyOf) chosen to land on `partition`.
 */
export const tickRecordSchema = z.strictObject({
  type: z.literal("tick"),
  schema_version: schemaVersionSchema,
  record_id: opaqueIdSchema,
  /** The input partition the tick was written for; a tick found on another partition is refused. */
  partition: z.int().min(0).max(MAX_TICK_PARTITION),
  occurred_at: isoDateTimeSchema,
});
export type TickRecord = z.infer<typeof tickRecordSchema>;
