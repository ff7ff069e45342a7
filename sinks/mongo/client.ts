import { MongoClient } from "mongodb";

/**
 * Money is bigint in the billing core; useBigInt64 makes the driver write bigint as BSON int64 and read
 * int64 back as bigint, so a balance survives a round trip exactly.
 */
export function createMongo(uri: string, options: { timeoutMs?: number } = {}): MongoClient {
  return new MongoClient(uri, {
    // A socket read waiting past it ends the operation with a network timeout and closes the connection.
    ...(options.timeoutMs === undefined ? {} : { socketTimeoutMS: options.timeoutMs }),
    useBigInt64: true,
    ignoreUndefined: true,
    maxPoolSize: 20,
    serverSelectionTimeoutMS: 10_000,
    retryWrites: false,
  });
}
