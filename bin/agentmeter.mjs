#!/usr/bin/env node
// Launcher: the CLI is TypeScript run through tsx, so there is no build step to forget.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../pipeline/cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
