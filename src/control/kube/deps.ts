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
