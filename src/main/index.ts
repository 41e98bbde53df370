#!/usr/bin/env bun
// The one entry point: `edgemesh agent|dev|gateway|status`. Wiring lives in agent.ts / dev.ts.

import { parseArgs, USAGE, UsageError } from "./args.ts";

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`edgemesh: ${err.message}\n${USAGE}`);
      return 2;
    }
    throw err;
  }
  switch (command.cmd) {
    case "help":
      console.log(USAGE);
      return 0;
    case "status":
      return (await import("./status.ts")).runStatus(command.admin, command.json);
    case "dev":
      return (await import("./dev.ts")).runDev(command);
    case "agent":
      return (await import("./agent.ts")).runAgent(command.config);
    case "gateway":
      console.error("edgemesh gateway: the edge gateway is not implemented yet (no issue delivered it)");
      return 2;
  }
}

main(process.argv.slice(2)).then(
  // Long-running commands return only after their stop sequence; exit even if a handle lingers.
  (code) => process.exit(code),
  (err) => {
    console.error(`edgemesh: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(1);
  },
);
