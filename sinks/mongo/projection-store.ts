/** The MongoDB adapter of the processor's projection store (pipeline/processor/ports.ts). */
import type { AnyBulkWriteOperation, Collection, Document } from "mongodb";
import {
  type ProjectionStore,
  type ProjectionTarget,
  type ProjectionWrite,
  targetKey,
} from "../../pipeline/processor/ports.ts";
import { chunked, groupBy, STATEMENTS_PER_COMMAND } from "./bulk.ts";
import { COLLECTIONS, type MongoLayout } from "./layout.ts";
import type { Limiter, WeightedTask } from "./limiter.ts";

/** One projection as a bulk-write statement: an absolute value, so writing it twice is harmless. */
function statement(projection: ProjectionWrite): AnyBulkWriteOperation<Document> {
  const filter = { _id: projection.id } as Document;
  if (projection.ifExists === true) return { updateOne: { filter, update: { $set: projection.doc ?? {} } } };
  if (projection.merge !== undefined)
    return { updateOne: { filter, update: { $set: projection.merge.set }, upsert: true } };
  return { replaceOne: { filter, replacement: projection.doc ?? {}, upsert: true } };
}

export class MongoProjectionStore implements ProjectionStore {
  constructor(
    private readonly layout: MongoLayout,
    private readonly limiter: Limiter,
  ) {}

  private collectionOf(target: ProjectionTarget): Collection<Document> {
    switch (target.db) {
      case "app":
        return this.layout.app(target.app).collection(COLLECTIONS.app[target.collection]);
      case "platform":
        return this.layout.platform().collection(COLLECTIONS.platform[target.collection]);
      case "workflow":
        return this.layout.workflow().collection(COLLECTIONS.workflow[target.collection]);
    }
  }

  private byCollection(writes: readonly ProjectionWrite[]): [Collection<Document>, ProjectionWrite[]][] {
    return [...groupBy(writes, (projection) => targetKey(projection.target)).values()].map((list) => [
      this.collectionOf(list[0]!.target),
      list,
    ]);
  }

  /**
   * Immutable documents go in one insertMany per collection; a failure there (a document already in,
   * after a crash or a retried flush) falls back to upserting them. The rest are upserts, in bulks of a
   * few statements per collection (see bulk.ts), weighed by their statements under the process-wide
   * limiter. Two partitions creating the same shared document at once can collide on its _id; the flush
   * is then retried and finds it.
   */
  async write(writes: readonly ProjectionWrite[]): Promise<void> {
    const tasks: WeightedTask[] = [];
    const upsert = (collection: Collection<Document>, chunk: readonly ProjectionWrite[]) => async () => {
      await collection.bulkWrite(chunk.map(statement), { ordered: false });
    };
    for (const [collection, list] of this.byCollection(
      writes.filter((projection) => projection.immutable !== true),
    )) {
      for (const chunk of chunked(list)) tasks.push({ run: upsert(collection, chunk), weight: chunk.length });
    }
    for (const [collection, list] of this.byCollection(
      writes.filter((projection) => projection.immutable === true),
    )) {
      // Weighed as its fallback, so that the fallback needs no second permit (which could deadlock).
      const weight = Math.min(list.length, STATEMENTS_PER_COMMAND);
      const run = async () => {
        try {
          await collection.insertMany(
            list.map((projection) => ({ _id: projection.id, ...projection.doc }) as Document),
            { ordered: false },
          );
        } catch {
          for (const chunk of chunked(list)) await upsert(collection, chunk)();
        }
      };
      tasks.push({ run, weight });
    }
    await this.limiter.all(tasks);
  }
}
