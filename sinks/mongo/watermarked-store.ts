import { type Collection, type Document, MongoServerError } from "mongodb";
import { AgentmeterError } from "../../pipeline/errors.ts";
import type { Limiter } from "./limiter.ts";

/**
 * Documents owned by one input partition (account documents, per-partition revenue ledgers) are written
 * as whole values, each with the offset of the last record applied to it (`wm_offset`) in the same
 * single-document write. That gives exactly-once effect without transactions:
 *  - a record at or below a document's watermark is already in it, so re-delivery skips it;
 *  - a write is a compare-and-set on the watermark the owner loaded, so a member that lost the partition
 *    cannot overwrite what the new owner wrote (it gets OWNERSHIP_LOST and reloads).
 */
export interface DocRef {
  collection: Collection<Document>;
  id: string;
}

export interface LoadedDoc<T> {
  body: T | undefined;
  /** -1 when the document does not exist yet. */
  wmOffset: bigint;
}

export interface PendingWrite<T> {
  ref: DocRef;
  body: T;
  loadedWm: bigint;
  newWm: bigint;
}

export const WM_FIELDS = ["_id", "wm_topic", "wm_partition", "wm_offset"] as const;

function toBody<T>(doc: Document): T {
  const { _id, wm_topic, wm_partition, wm_offset, ...body } = doc;
  return body as T;
}

function toOffset(value: unknown): bigint {
  if (typeof value === "bigint") return value;
  if (typeof value === "number") return BigInt(value);
  return -1n;
}

/** Loads many documents of one collection in one round trip. */
export async function loadDocs<T>(
  collection: Collection<Document>,
  ids: readonly string[],
): Promise<Map<string, LoadedDoc<T>>> {
  const found = new Map<string, LoadedDoc<T>>();
  if (ids.length === 0) return found;
  const docs = await collection.find({ _id: { $in: [...ids] } } as Document).toArray();
  for (const doc of docs)
    found.set(String(doc._id), { body: toBody<T>(doc), wmOffset: toOffset(doc.wm_offset) });
  for (const id of ids) if (!found.has(id)) found.set(id, { body: undefined, wmOffset: -1n });
  return found;
}

function isDuplicateKey(error: unknown): boolean {
  // FerretDB v1 can answer a duplicate key with code 1 instead of 11000; its message still says so.
  return error instanceof MongoServerError && (error.code === 11000 || /duplicate key/i.test(error.message));
}

/**
 * Writes one document as compare-and-set on its watermark. A write that finds the document already at
 * `newWm` is a retry of our own earlier write (its response was lost) and counts as done.
 */
export async function writeDoc<T extends Document>(
  write: PendingWrite<T>,
  wm: { topic: string; partition: number },
): Promise<void> {
  const { ref, body, loadedWm, newWm } = write;
  const doc = { ...body, wm_topic: wm.topic, wm_partition: wm.partition, wm_offset: newWm };
  try {
    if (loadedWm < 0n) {
      await ref.collection.insertOne({ _id: ref.id, ...doc } as Document);
      return;
    }
    const result = await ref.collection.replaceOne({ _id: ref.id, wm_offset: loadedWm } as Document, doc);
    if (result.matchedCount === 1) return;
  } catch (error) {
    if (!isDuplicateKey(error)) throw error;
  }
  const current = await ref.collection.findOne({ _id: ref.id } as Document, { projection: { wm_offset: 1 } });
  if (current !== null && toOffset(current.wm_offset) === newWm) return;
  throw new AgentmeterError(
    "OWNERSHIP_LOST",
    `${ref.collection.dbName}.${ref.collection.collectionName}/${ref.id} moved to wm ${String(current?.wm_offset)} (expected ${loadedWm})`,
    { details: { collection: ref.collection.collectionName, id: ref.id } },
  );
}

/**
 * Writes many documents. New documents go in one insertMany per collection (a single statement);
 * existing ones each as their own compare-and-set replace, under the process-wide limiter: FerretDB v1
 * wedged on multi-statement update commands here, so there is no bulk update. A failed insertMany is
 * redone document by document, where a duplicate is told apart as "already ours" or OWNERSHIP_LOST.
 */
export async function writeDocs<T extends Document>(
  writes: readonly PendingWrite<T>[],
  wm: { topic: string; partition: number },
  limiter: Limiter,
): Promise<void> {
  const inserts = new Map<Collection<Document>, PendingWrite<T>[]>();
  const tasks: (() => Promise<void>)[] = [];
  for (const write of writes) {
    if (write.loadedWm >= 0n) {
      tasks.push(() => writeDoc(write, wm));
      continue;
    }
    const group = inserts.get(write.ref.collection);
    if (group === undefined) inserts.set(write.ref.collection, [write]);
    else group.push(write);
  }
  for (const [collection, group] of inserts) tasks.push(() => insertNew(collection, group, wm));
  await limiter.all(tasks);
}

async function insertNew<T extends Document>(
  collection: Collection<Document>,
  writes: readonly PendingWrite<T>[],
  wm: { topic: string; partition: number },
): Promise<void> {
  try {
    await collection.insertMany(
      writes.map((write) => ({
        _id: write.ref.id,
        ...write.body,
        wm_topic: wm.topic,
        wm_partition: wm.partition,
        wm_offset: write.newWm,
      })) as Document[],
      { ordered: true },
    );
  } catch (error) {
    if (!(error instanceof MongoServerError)) throw error;
    // Some may be in already (a retried flush, or another member): settle each one on its own.
    for (const write of writes) await writeDoc(write, wm);
  }
}
