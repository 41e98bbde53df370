#!/usr/bin/env bun
// The one entry point: `edgemesh agent|dev|gateway|status|validate`. Wiring lives in agent.ts /
// dev.ts; this file maps the command to its runner and the outcome to an exit code:
// 0 done, 1 failed (the reason on stderr, one line), 2 bad command line (with the usage).

import { configureLogging, createLogger } from "../log/index.ts";
import { COMMAND_HELP, parseArgs, USAGE, UsageError } from "./args.ts";
import { buildInfo } from "./build-info.ts";

async function main(argv: string[]): Promise<number> {
  let command;
  try {
    command = parseArgs(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`edgemesh: ${err.message}\n\n${err.topic ? `usage: ${COMMAND_HELP[err.topic]}` : USAGE}`);
      return 2;
    }
    throw err;
  }
  // Flags first, so even a config file that fails to load is reported in the chosen format.
  if ("logLevel" in command || "logFormat" in command) configureLogging({ level: command.logLevel, format: command.logFormat });
  switch (command.cmd) {
    case "help":
      console.log(command.topic ? `usage: ${COMMAND_HELP[command.topic]}` : USAGE);
      return 0;
    case "version": {
      const b = buildInfo();
      console.log(`edgemesh-bun ${b.version} (revision ${b.revision}; bun ${Bun.version}, ${process.platform}/${process.arch})`);
      return 0;
    }
    case "validate":
      return (await import("./validate.ts")).runValidate(command.config, { json: command.json });
    case "status":
      return (await import("./status.ts")).runStatus(command.admin, command.json);
    case "dev":
      return (await import("./dev.ts")).runDev(command);
    case "agent":
      return (await import("./agent.ts")).runAgent(command.config, command);
    case "gateway":
      return (await import("./gateway.ts")).runGateway(command.config, command);
  }
}

main(process.argv.slice(2)).then(
  // Long-running commands return only after their stop sequence; exit even if a handle lingers.
  (code) => process.exit(code),
  // A fatal start error goes through the logger like everything else (one JSON object with
  // --log-format json), and the process exits 1.
  (err) => {
    createLogger().error(err instanceof Error ? err.message : String(err));
    process.exit(1);
  },
);
