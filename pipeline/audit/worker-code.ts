import { createHash } from "node:crypto";
import { mkdir, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const WORKER_SOURCE = fileURLToPath(new URL("./recompute-worker.ts", import.meta.url));

let bundled: Promise<URL> | undefined;

/**
 * The recompute worker's code as one ES module file: `recompute-worker.ts` and everything it imports
 * (the billing core, the schemas, zod), bundled by esbuild (the compiler tsx itself runs on). Built once
 * per process, in about a tenth of a second, into the system's temporary directory under a name made of
 * its content's hash, so processes of the same code share it and a process never reads another
 * version's.
 *
 * Why not tsx in the worker: a worker thread inherits neither `node --import tsx` nor the main thread's
 * module hooks, so it had to register tsx and compile each of its ~60 modules itself: 350-400 ms and
 * about 0.4 CPU-seconds a worker before its first record (0.7 s in a busy audit), on a machine whose two
 * cores the audit needs for the recompute. From the bundle a worker is ready in about 130 ms. A file
 * rather than a `data:` URL so that stack traces and `--cpu-prof` profiles name it.
 */
export function recomputeWorkerUrl(): Promise<URL> {
  bundled ??= bundle();
  return bundled;
}

async function bundle(): Promise<URL> {
  const result = await build({
    entryPoints: [WORKER_SOURCE],
    bundle: true,
    platform: "node",
    format: "esm",
    target: `node${process.versions.node.split(".")[0]}`,
    write: false,
    logLevel: "silent",
  });
  const code = result.outputFiles[0]!.contents;
  const dir = join(
    tmpdir(),
    `agentmeter-audit-worker-${createHash("sha256").update(code).digest("hex").slice(0, 16)}`,
  );
  const file = join(dir, "recompute-worker.mjs");
  await mkdir(dir, { recursive: true });
  // Written whole under another name, then renamed: a concurrent process never loads half a file.
  const partial = `${file}.${process.pid}.${Date.now()}.partial`;
  await writeFile(partial, code);
  await rename(partial, file);
  return pathToFileURL(file);
}
