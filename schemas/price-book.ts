import { z } from "zod";
import { modelNameSchema, opaqueIdSchema } from "./ids.ts";
import { isoDateTimeSchema } from "./time.ts";

const pricePerMillion = z.int().nonnegative().max(1_000_000_000_000);

/**
 * One price of one model from `effective_from` on (until a later entry of the same model).
 * Prices are micro-units of currency per 1,000,000 tokens: $2.50 per million = 2_500_000.
 */
export const priceEntrySchema = z.strictObject({
  price_id: opaqueIdSchema,
  model: modelNameSchema,
  effective_from: isoDateTimeSchema,
  prompt_micros_per_mtok: pricePerMillion,
  completion_micros_per_mtok: pricePerMillion,
  /**
   * Prices of the token classes. Absent, a class falls back (docs/billing.md): cached prompt tokens to
   * the prompt price, reasoning tokens to the completion price; audio tokens have no fallback (they cost
   * several times text at every provider, so any text price would under-bill): usage with audio tokens
   * on an entry without an audio price is rejected, UNPRICED_TOKEN_CLASS.
   */
  cached_prompt_micros_per_mtok: pricePerMillion.optional(),
  reasoning_micros_per_mtok: pricePerMillion.optional(),
  audio_micros_per_mtok: pricePerMillion.optional(),
});
export type PriceEntry = z.infer<typeof priceEntrySchema>;

/** A price book: entries with unique price ids, at most one entry per (model, effective_from). */
export const priceBookSchema = z
  .strictObject({ entries: z.array(priceEntrySchema) })
  .superRefine((book, ctx) => {
    const ids = new Set<string>();
    const starts = new Set<string>();
    book.entries.forEach((entry, index) => {
      if (ids.has(entry.price_id)) {
        ctx.addIssue({ code: "custom", path: ["entries", index, "price_id"], message: "is a duplicate" });
      }
      ids.add(entry.price_id);
      const start = `${entry.model}\u0000${Date.parse(entry.effective_from)}`;
      if (starts.has(start)) {
        ctx.addIssue({
          code: "custom",
          path: ["entries", index, "effective_from"],
          message: `another entry of model ${entry.model} starts at the same time`,
        });
      }
      starts.add(start);
    });
  });
export type PriceBook = z.infer<typeof priceBookSchema>;
