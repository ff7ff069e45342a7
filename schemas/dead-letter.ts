import { z } from "zod";
import { SCHEMA_VERSION } from "./common.ts";
import { ERROR_CODES } from "./errors.ts";
import { isoDateTimeSchema } from "./time.ts";

/** What the processor writes to the dead-letter topic for a record it could not apply. */
export const deadLetterSchema = z.strictObject({
  schema_version: z.literal(SCHEMA_VERSION),
  reason_code: z.enum(ERROR_CODES),
  /** Human text; for schema errors it names each zod issue path. */
  reason: z.string(),
  /** The original message value, base64, byte for byte (so it can be fixed and replayed). */
  original: z.base64(),
  source: z.strictObject({
    topic: z.string(),
    partition: z.int().nonnegative(),
    /** Kafka offsets are int64: a decimal string. */
    offset: z.string().regex(/^[0-9]+$/),
    /**
     * The name the stores keep this topic's rows under when it is not `topic`: a topic deleted and created
     * again is a new log whose offsets start over, stored as `{topic}~{n}` (sinks/mongo/topic-registry.ts).
     * Absent in letters written before it existed, which do not say which incarnation they came from.
     */
    stored_as: z.string().optional(),
  }),
  /** The message key as text (null when the message had none). */
  key: z.string().nullable(),
  /**
   * The key's bytes, base64, when they are not valid UTF-8 (so `key`, which replaced them, does not keep
   * them byte for byte). Absent for a key that is text, as every account key is.
   */
  key_base64: z.base64().optional(),
  failed_at: isoDateTimeSchema,
});
export type DeadLetter = z.infer<typeof deadLetterSchema>;

/** The message key a letter was refused with, byte for byte: key_base64's bytes when it has them. */
export function letterKey(letter: Pick<DeadLetter, "key" | "key_base64">): string | Buffer | null {
  return letter.key_base64 === undefined ? letter.key : Buffer.from(letter.key_base64, "base64");
}
