// Clean shutdown on SIGTERM/SIGINT: run the stop sequence once, then resolve the exit code.
// A second signal while draining exits at once.

import type { Logger } from "../log/index.ts";

export function onShutdown(log: Logger, stop: () => Promise<void>): Promise<number> {
  return new Promise((resolve) => {
    let stopping = false;
    const handler = (signal: string) => {
      if (stopping) {
        log.warn(`second ${signal}: exiting without draining`);
        process.exit(130);
      }
      stopping = true;
      log.info(`${signal}: draining and cleaning up`);
      stop().then(
        () => resolve(0),
        (err) => {
          log.error("shutdown failed", { error: err });
          resolve(1);
        },
      );
    };
    process.on("SIGTERM", () => handler("SIGTERM"));
    process.on("SIGINT", () => handler("SIGINT"));
  });
}
