/**
 * Documents owned by one input partition (account documents, per-partition revenue ledgers) are written
 * as whole values, each with the log position of the last record applied to it (`wm_topic`,
 * `wm_partition`, `wm_offset`) in the same single-document write. That gives exactly-once effect without
 * transactions:
 *  - a record from the same topic and partition at or below a document's watermark is already in it, so
 *    re-delivery skips it; a record from any other position is never taken for a replay;
 *  - a write is a compare-and-set on the whole position the owner loaded, so a member that lost the
 *    partition cannot overwrite what the new owner wrote (it gets OWNERSHIP_LOST and reloads).
 */
import { type Collection, type Document, MongoServerError } from "mongodb";
import { AgentmeterError } from "../../pipeline/errors.ts";
import {
  type DocRef,
  formatPosition,
  type LoadedDoc,
  type PendingWrite,
  type SourcePartition,
  samePosition,
  type Watermark,
} from "../../pipeline/processor/ports.ts";
import { chunked, groupBy, namespaceOf } from "./bulk.ts";
import type { Limiter, WeightedTask } from "./limiter.ts";

function toBody<T>(doc: Document): T {
  const { _id, wm_topic, wm_partition, wm_offset, ...body } = doc;
  return body as T;
}

function toOffset(value: unknown): bigint | undefined {
  if (typeof value === "bigint") return value;
  if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
  return undefined;
}

/** The watermark a stored document carries; a document without a readable one is not agentmeter's. */
function positionOf(doc: Document): Watermark | undefined {
  const offset = toOffset(doc.wm_offset);
  if (typeof doc.wm_topic !== "string" || typeof doc.wm_partition !== "number" || offset === undefined)
    return undefined;
  return { topic: doc.wm_topic, partition: doc.wm_partition, offset };
}

/** The compare-and-set condition on a loaded watermark (all three fields: a position, not an offset). */
function wmFilter(wm: Watermark): Document {
  return { wm_topic: wm.topic, wm_partition: wm.partition, wm_offset: wm.offset };
}

/**
 * Up to this many documents are loaded by point reads, more by one `$in` query. FerretDB v1 does not push
 * `$in` down to PostgreSQL (every `$in` reads the whole collection), while a point read on `_id` uses
 * the local stack's `_id` index: with a new account in most batches, point reads cut the produce-to-
 * balance p50 at 500 records/s from 5.3 s to 1.9 s here. Past a few dozen, one scan costs less than the
 * round trips (a cold start loading a whole partition's accounts).
 */
const POINT_READS_UP_TO = 32;

/** Loads documents of one collection by id: by point reads when few, else in one round trip. */
export async function loadDocs<T>(
  collection: Collection<Document>,
  ids: readonly string[],
): Promise<Map<string, LoadedDoc<T>>> {
  const found = new Map<string, LoadedDoc<T>>();
  if (ids.length === 0) return found;
  const docs: Document[] = [];
  if (ids.length <= POINT_READS_UP_TO) {
    for (const doc of await Promise.all(ids.map((id) => collection.findOne({ _id: id } as Document))))
      if (doc !== null) docs.push(doc);
  } else {
    docs.push(...(await collection.find({ _id: { $in: [...ids] } } as Document).toArray()));
  }
  for (const doc of docs) {
    const wm = positionOf(doc);
    if (wm === undefined) {
      const invalid = `${namespaceOf(collection)}/${String(doc._id)} has no watermark (wm_topic, wm_partition, wm_offset): not a document agentmeter wrote`;
      found.set(String(doc._id), { body: undefined, wm: null, invalid });
      continue;
    }
    found.set(String(doc._id), { body: toBody<T>(doc), wm });
  }
  for (const id of ids) if (!found.has(id)) found.set(id, { body: undefined, wm: null });
  return found;
}

function isDuplicateKey(error: unknown): boolean {
  // FerretDB v1 can answer a duplicate key with code 1 instead of 11000; its message still says so.
  return error instanceof MongoServerError && (error.code === 11000 || /duplicate key/i.test(error.message));
}

function stored<T extends object>(
  write: PendingWrite<T>,
  wm: { topic: string; partition: number },
): Document {
  return {
    _id: write.ref.id,
    ...write.body,
    wm_topic: wm.topic,
    wm_partition: wm.partition,
    wm_offset: write.newWm,
  };
}

/**
 * After a compare-and-set that did not match everywhere: each document must now be at its `newWm`
 * (written by this call or by an earlier try of the same flush whose answer was lost). Any other
 * watermark means another member wrote it since we loaded it.
 */
async function settle<T>(
  collection: Collection<Document>,
  writes: readonly PendingWrite<T>[],
  wm: { topic: string; partition: number },
): Promise<void> {
  const current = await collection
    .find({ _id: { $in: writes.map((write) => write.ref.id) } } as Document, {
      projection: { wm_topic: 1, wm_partition: 1, wm_offset: 1 },
    })
    .toArray();
  const at = new Map(current.map((doc) => [String(doc._id), positionOf(doc) ?? null]));
  for (const write of writes) {
    const wmNow = at.get(write.ref.id) ?? null;
    if (samePosition(wmNow, { ...wm, offset: write.newWm })) continue;
    throw new AgentmeterError(
      "OWNERSHIP_LOST",
      `${namespaceOf(collection)}/${write.ref.id} moved to ${formatPosition(wmNow)} (loaded ${formatPosition(write.loaded)})`,
      { details: { collection: collection.collectionName, id: write.ref.id } },
    );
  }
}

/** Existing documents: one bulk of compare-and-set replaces (filter on the loaded watermark). */
async function replaceExisting<T extends object>(
  collection: Collection<Document>,
  writes: readonly PendingWrite<T>[],
  wm: { topic: string; partition: number },
): Promise<void> {
  const result = await collection.bulkWrite(
    writes.map((write) => {
      const { _id, ...replacement } = stored(write, wm);
      return { replaceOne: { filter: { _id, ...wmFilter(write.loaded!) }, replacement } };
    }),
    { ordered: false },
  );
  if (result.matchedCount !== writes.length) await settle(collection, writes, wm);
}

/** New documents: one insert; if some exist already (a retried flush, or another member), settle them. */
async function insertNew<T extends object>(
  collection: Collection<Document>,
  writes: readonly PendingWrite<T>[],
  wm: { topic: string; partition: number },
): Promise<void> {
  try {
    await collection.insertMany(
      writes.map((write) => stored(write, wm)),
      { ordered: false },
    );
  } catch (error) {
    if (!isDuplicateKey(error)) throw error;
    await settle(collection, writes, wm);
  }
}

/**
 * Writes many documents, each with its watermark, grouped per collection and per kind (new documents in
 * inserts, existing ones in bulks of compare-and-set replaces), chunked so that each command stays small
 * (see bulk.ts) and weighed by its statements under the process-wide limiter.
 */
export async function writeDocs<T extends object>(
  writes: readonly PendingWrite<T>[],
  wm: SourcePartition,
  limiter: Limiter,
  collectionOf: (ref: DocRef) => Collection<Document>,
): Promise<void> {
  const groups = groupBy(writes, (write) => `${write.ref.namespace}:${write.loaded === null}`);
  const tasks: WeightedTask[] = [];
  for (const group of groups.values()) {
    const collection = collectionOf(group[0]!.ref);
    if (group[0]!.loaded === null) {
      // An insert is one statement for FerretDB however many documents it carries.
      tasks.push(() => insertNew(collection, group, wm));
      continue;
    }
    for (const chunk of chunked(group))
      tasks.push({ run: () => replaceExisting(collection, chunk, wm), weight: chunk.length });
  }
  await limiter.all(tasks);
}
