// The injected dependencies of the Kubernetes source. The clock is the control plane's own
// (src/control/clock.ts), so a manual test clock drives it too.

export type { Logger } from "../../log/index.ts";
export type { MetricsRegistry } from "../../metrics/index.ts";

import type { Clock } from "../clock.ts";
export { systemClock, type Clock } from "../clock.ts";

/** A sleep that stop() can cut short. */
export interface Sleeper {
  sleep(ms: number): Promise<void>;
  wake(): void;
}

export function createSleeper(clock: Clock): Sleeper {
  let wake: (() => void) | undefined;
  return {
    sleep: (ms) =>
      new Promise<void>((resolve) => {
        const handle = clock.setTimeout(() => {
          wake = undefined;
          resolve();
        }, ms);
        wake = () => {
          clock.clearTimeout(handle);
          wake = undefined;
          resolve();
        };
      }),
    wake: () => wake?.(),
  };
}

/** Exponential backoff with jitter: attempt 1 waits about `initialMs`, capped at `maxMs`. The
 * jitter (50-100% of the step) spreads the reconnects of many agents after a shared outage. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number, random: () => number): number {
  const base = Math.min(maxMs, initialMs * 2 ** Math.min(Math.max(attempt - 1, 0), 20));
  return Math.round(base * (0.5 + random() * 0.5));
}
