// Time as a dependency. Everything in the control plane that waits (the sync runner, the
// manifest watcher's debounce and rescan) takes a Clock, so tests drive time by hand with
// createManualClock() instead of sleeping.

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

export interface ManualClock extends Clock {
  /** Move time forward, firing every timer that falls due, in due-time order. */
  advance(ms: number): void;
  /** Number of timers not yet fired or cleared. */
  pending(): number;
}

interface ManualTimer {
  due: number;
  seq: number;
  fn: () => void;
}

export function createManualClock(start = 0): ManualClock {
  let now = start;
  let seq = 0;
  const timers = new Set<ManualTimer>();

  const next = (limit: number): ManualTimer | undefined => {
    let best: ManualTimer | undefined;
    for (const t of timers) {
      if (t.due > limit) continue;
      if (!best || t.due < best.due || (t.due === best.due && t.seq < best.seq)) best = t;
    }
    return best;
  };

  return {
    now: () => now,
    setTimeout(fn, ms) {
      const timer: ManualTimer = { due: now + Math.max(0, ms), seq: seq++, fn };
      timers.add(timer);
      return timer;
    },
    clearTimeout(handle) {
      timers.delete(handle as ManualTimer);
    },
    advance(ms) {
      const target = now + ms;
      // Timers scheduled while firing also fire if they fall due before the target.
      for (let t = next(target); t; t = next(target)) {
        timers.delete(t);
        now = Math.max(now, t.due);
        t.fn();
      }
      now = target;
    },
    pending: () => timers.size,
  };
}
