import type { HeaderValue } from "../auth/signature.ts";
import type { TopicMessage } from "./recompute.ts";

/**
 * Messages of one partition, in offset order, packed into a few typed arrays so that a batch crosses to
 * a worker thread by transfer (no copy, no per-message object to serialise). Keys and values are
 * concatenated; `*Ends[i]` is where message i's bytes end, `nulls` says which are null (bit 1: key,
 * bit 2: value). Headers are rare (signed operator records) and go as they are.
 */
export interface MessagePacket {
  /** The partition of every message, unless `partitions` says each one's. */
  partition: number;
  /**
   * Each message's partition, when the packet holds several partitions' messages in one order (the
   * log-order merge of a topic whose partition count changed: feed.ts).
   */
  partitions?: Uint32Array;
  count: number;
  offsets: BigInt64Array;
  /** The log timestamp in epoch ms, NaN when the message has none. */
  timestamps: Float64Array;
  nulls: Uint8Array;
  keyEnds: Uint32Array;
  keys: Uint8Array;
  valueEnds: Uint32Array;
  values: Uint8Array;
  headers: [index: number, headers: Record<string, HeaderValue>][];
  /** Bytes of keys and values: what a worker's backlog is measured in. */
  bytes: number;
}

const KEY_NULL = 1;
const VALUE_NULL = 2;

export function packMessages(
  partition: number,
  messages: readonly TopicMessage[],
  partitions?: readonly number[],
): MessagePacket {
  const count = messages.length;
  if (partitions !== undefined && partitions.length !== count)
    throw new Error("audit: a packet needs one partition per message");
  let keyBytes = 0;
  let valueBytes = 0;
  for (const message of messages) {
    keyBytes += message.key?.length ?? 0;
    valueBytes += message.value?.length ?? 0;
  }
  const packet: MessagePacket = {
    partition,
    count,
    offsets: new BigInt64Array(count),
    timestamps: new Float64Array(count),
    nulls: new Uint8Array(count),
    keyEnds: new Uint32Array(count),
    keys: new Uint8Array(keyBytes),
    valueEnds: new Uint32Array(count),
    values: new Uint8Array(valueBytes),
    headers: [],
    bytes: keyBytes + valueBytes,
  };
  if (partitions !== undefined) packet.partitions = Uint32Array.from(partitions);
  let keyAt = 0;
  let valueAt = 0;
  for (let i = 0; i < count; i++) {
    const message = messages[i]!;
    packet.offsets[i] = BigInt(message.offset);
    const timestamp = message.timestamp === undefined ? Number.NaN : Number(message.timestamp);
    packet.timestamps[i] = Number.isFinite(timestamp) ? timestamp : Number.NaN;
    let nulls = 0;
    if (message.key === null) nulls |= KEY_NULL;
    else {
      packet.keys.set(message.key, keyAt);
      keyAt += message.key.length;
    }
    if (message.value === null) nulls |= VALUE_NULL;
    else {
      packet.values.set(message.value, valueAt);
      valueAt += message.value.length;
    }
    packet.nulls[i] = nulls;
    packet.keyEnds[i] = keyAt;
    packet.valueEnds[i] = valueAt;
    if (message.headers !== undefined && Object.keys(message.headers).length > 0)
      packet.headers.push([i, message.headers]);
  }
  return packet;
}

/** The buffers a packet can hand over to another thread (postMessage's transfer list). */
export function packetTransfer(packet: MessagePacket): ArrayBuffer[] {
  return [
    packet.offsets,
    packet.timestamps,
    packet.nulls,
    packet.keyEnds,
    packet.keys,
    packet.valueEnds,
    packet.values,
    ...(packet.partitions === undefined ? [] : [packet.partitions]),
  ].map((array) => array.buffer as ArrayBuffer);
}

/** A header value as kafkajs gives it: a structured clone turns Buffers into plain Uint8Arrays. */
function asBuffer(value: unknown): HeaderValue {
  if (value instanceof Uint8Array && !Buffer.isBuffer(value))
    return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  if (Array.isArray(value)) return value.map((item) => asBuffer(item) as Buffer | string);
  return value as HeaderValue;
}

/**
 * The messages of a packet, as the reader had them (offset and timestamp as decimal strings, keys and
 * values as Buffers over the packet's bytes, headers with Buffer values), one at a time in order.
 */
export function unpackMessages(
  packet: MessagePacket,
  onMessage: (partition: number, message: TopicMessage) => void,
): void {
  const keys = Buffer.from(packet.keys.buffer, packet.keys.byteOffset, packet.keys.byteLength);
  const values = Buffer.from(packet.values.buffer, packet.values.byteOffset, packet.values.byteLength);
  const headers = new Map<number, Record<string, HeaderValue>>();
  for (const [index, record] of packet.headers) {
    const restored: Record<string, HeaderValue> = {};
    for (const name of Object.keys(record)) restored[name] = asBuffer(record[name]);
    headers.set(index, restored);
  }
  let keyAt = 0;
  let valueAt = 0;
  for (let i = 0; i < packet.count; i++) {
    const nulls = packet.nulls[i]!;
    const keyEnd = packet.keyEnds[i]!;
    const valueEnd = packet.valueEnds[i]!;
    const timestamp = packet.timestamps[i]!;
    const message: TopicMessage = {
      offset: packet.offsets[i]!.toString(),
      key: nulls & KEY_NULL ? null : keys.subarray(keyAt, keyEnd),
      value: nulls & VALUE_NULL ? null : values.subarray(valueAt, valueEnd),
    };
    if (!Number.isNaN(timestamp)) message.timestamp = String(timestamp);
    const messageHeaders = headers.get(i);
    if (messageHeaders !== undefined) message.headers = messageHeaders;
    keyAt = keyEnd;
    valueAt = valueEnd;
    onMessage(packet.partitions?.[i] ?? packet.partition, message);
  }
}
