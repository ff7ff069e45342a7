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
