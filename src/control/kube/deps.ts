// The injected dependencies of the Kubernetes source. Clock has the same shape as the control
// plane's Clock (src/control/clock.ts), so the lead's clock (or a manual test clock) fits as is.

export type { Logger } from "../../log/index.ts";
export type { MetricsRegistry } from "../../metrics/index.ts";

export interface Clock {
  /** ms since epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

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
