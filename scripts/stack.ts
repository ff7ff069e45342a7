/**
 * `npm run stack:up | stack:down | stack:status`: the local Kafka + ClickHouse + FerretDB(+PostgreSQL) stack
 * for machines without Docker. Progress goes to stderr; `up` prints the connection env on stdout.
 */

import {
  connectionEnv,
  loadStackConfig,
  type ServiceStatus,
  stackDown,
  stackStatus,
  stackUp,
} from "../deploy/local/stack.ts";
import { isAgentmeterError } from "../schemas/errors.ts";

function formatStatus(statuses: ServiceStatus[]): string {
  return statuses
    .map((s) => {
      const memory = s.memoryBytes === undefined ? "" : `mem ${Math.round(s.memoryBytes / 1024 / 1024)}MB`;
      return [
        s.name.padEnd(10),
        s.state.padEnd(8),
        (s.pid === undefined ? "" : `pid ${s.pid}`).padEnd(11),
        s.ports
          .map((p) => `127.0.0.1:${p}`)
          .join(",")
          .padEnd(32),
        memory.padEnd(11),
        s.version ?? "",
        s.state === "dead" || s.state === "unready" ? `(see ${s.logFile})` : "",
      ]
        .join(" ")
        .trimEnd();
    })
    .join("\n");
}

async function main(command: string | undefined): Promise<number> {
  const config = loadStackConfig();
  switch (command) {
    case "up": {
      const endpoints = await stackUp({ config });
      process.stderr.write(`${formatStatus(await stackStatus({ config, versions: true }))}\n`);
      process.stdout.write(`${connectionEnv(endpoints)}\n`);
      return 0;
    }
    case "down":
      await stackDown({ config });
      return 0;
    case "status": {
      const statuses = await stackStatus({ config, versions: true });
      process.stdout.write(`${formatStatus(statuses)}\n`);
      // Non-zero unless everything runs, so scripts can use `stack:status` as a health check.
      return statuses.every((s) => s.state === "running") ? 0 : 3;
    }
    default:
      process.stderr.write("usage: node --import tsx scripts/stack.ts up|down|status\n");
      return 2;
  }
}

try {
  process.exitCode = await main(process.argv[2]);
} catch (error) {
  if (isAgentmeterError(error)) {
    process.stderr.write(`${error.code}: ${error.message}\n`);
  } else {
    process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  }
  process.exitCode = 1;
}
