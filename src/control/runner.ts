// A bounded-frequency runner in the manner of kube-proxy's BoundedFrequencyRunner: callers say
// "something changed" as often as they like; the work function runs at most once per
// minInterval, a request made inside the interval turns into exactly one run at its end, and an
// optional maxInterval runs it periodically even without requests (the resync safety net).
// The publisher uses it to merge bursts of store changes; iptables sync reuses it (retryAfter).

import type { Clock } from "./clock.ts";
import { systemClock } from "./clock.ts";

export interface RunnerOptions {
  /** The work. Runs synchronously; a throw is reported to onError and does not stop the runner. */
  run: () => void;
  /** At most one run per this many ms. */
  minIntervalMs: number;
  /** Run at least this often even without requests; 0 = never. */
  maxIntervalMs?: number;
  clock?: Clock;
  onError?: (err: unknown) => void;
}

export interface Runner {
  /** Ask for a run: soon (next tick) if the last run is minInterval ago, else at the interval's end. */
  request(): void;
  /** Ask for a run no sooner than ms from now (still bounded by minInterval), e.g. after a failure. */
  retryAfter(ms: number): void;
  /** Cancel pending runs; later requests are ignored. */
  stop(): void;
}

export function createRunner(options: RunnerOptions): Runner {
  const clock = options.clock ?? systemClock;
  const minInterval = Math.max(0, options.minIntervalMs);
  const maxInterval = Math.max(0, options.maxIntervalMs ?? 0);
  const onError = options.onError ?? ((err: unknown) => console.error("runner: run failed", err));

  let lastRun = Number.NEGATIVE_INFINITY;
  let timer: unknown = undefined;
  let dueAt = Number.POSITIVE_INFINITY;
  let stopped = false;

  // One timer at a time: an earlier wish replaces a later one, a later wish merges into it.
  const schedule = (at: number): void => {
    if (stopped) return;
    if (timer !== undefined) {
      if (dueAt <= at) return;
      clock.clearTimeout(timer);
    }
    dueAt = at;
    timer = clock.setTimeout(fire, Math.max(0, at - clock.now()));
  };

  const fire = (): void => {
    timer = undefined;
    dueAt = Number.POSITIVE_INFINITY;
    if (stopped) return;
    lastRun = clock.now();
    try {
      options.run();
    } catch (err) {
      onError(err);
    }
    if (maxInterval > 0) schedule(lastRun + maxInterval);
  };

  if (maxInterval > 0) schedule(clock.now() + maxInterval);

  return {
    request() {
      schedule(Math.max(clock.now(), lastRun + minInterval));
    },
    retryAfter(ms: number) {
      schedule(Math.max(clock.now() + ms, lastRun + minInterval));
    },
    stop() {
      stopped = true;
      if (timer !== undefined) clock.clearTimeout(timer);
      timer = undefined;
    },
  };
}
