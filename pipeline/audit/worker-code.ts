import { createHash } from "node:crypto";
import { access, mkdir, readdir, rename, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { build } from "esbuild";

const WORKER_SOURCE = fileURLToPath(new URL("./recompute-worker.ts", import.meta.url));
const BUNDLE_DIR_PREFIX = "agentmeter-audit-worker-";
/**
 * Another version's bundle unused this long is removed. Each use marks its own bundle used, so only a
 * version no process has started a pool from in a week goes (an upgraded host's old versions).
 */
const UNUSED_BUNDLE_MS = 7 * 24 * 3_600_000;

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
export async function recomputeWorkerUrl(): Promise<URL> {
  bundled ??= bundle();
  const url = await bundled;
  try {
    // Marks the bundle used (so no other version's process prunes it), and proves it is still there.
    await utimes(fileURLToPath(new URL(".", url)), new Date(), new Date());
    await access(url);
    return url;
  } catch {
    // Removed under a long-lived process (the OS cleaning the temporary directory): built again.
    bundled = bundle();
    return bundled;
  }
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
  const name = `${BUNDLE_DIR_PREFIX}${createHash("sha256").update(code).digest("hex").slice(0, 16)}`;
  const dir = join(tmpdir(), name);
  const file = join(dir, "recompute-worker.mjs");
  await mkdir(dir, { recursive: true });
  // Written whole under another name, then renamed: a concurrent process never loads half a file.
  const partial = `${file}.${process.pid}.${Date.now()}.partial`;
  await writeFile(partial, code);
  await rename(partial, file);
  await pruneUnusedBundles(name);
  return pathToFileURL(file);
}

/**
 * Removes other versions' bundles unused for UNUSED_BUNDLE_MS: one is written per code version, so a
 * long-lived host would otherwise keep one (about 900 KB) per upgrade. Best effort: a bundle another
 * process removes first, or one that cannot be read, is left to it.
 */
async function pruneUnusedBundles(keep: string): Promise<void> {
  const root = tmpdir();
  let names: string[];
  try {
    names = await readdir(root);
  } catch {
    return;
  }
  const before = Date.now() - UNUSED_BUNDLE_MS;
  for (const name of names) {
    if (!name.startsWith(BUNDLE_DIR_PREFIX) || name === keep) continue;
    const dir = join(root, name);
    try {
      if ((await stat(dir)).mtimeMs < before) await rm(dir, { recursive: true, force: true });
    } catch {
      // Gone already, or not ours to remove.
    }
  }
}
