// Entry of an audit worker thread (pipeline/audit/pool.ts). A worker inherits neither `node --import tsx`
// nor the register() of bin/agentmeter.mjs (module hooks stay on the thread that registered them), so it
// registers tsx itself before loading its TypeScript: the same from the CLI, `npm run`, tests and benches.
import { register } from "tsx/esm/api";

register();
await import("./recompute-worker.ts");
