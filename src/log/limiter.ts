// Rate limiting for data-path warnings (dial failed, no endpoints, tunnel peer unreachable): a
// flood of one failure must not flood the log, nor the memory that remembers it. Per key (say
// service + endpoint + reason) the first event is logged; repeats within the interval are only
// counted, and the next logged event (or flush(), driven by its owner's timer) says how many
// were suppressed. At most maxKeys keys are remembered: the oldest goes first, and what it had
// suppressed is reported in a summary line, so no count is lost.

import type { Counter } from "../metrics/index.ts";
import type { Logger } from "./logger.ts";

/** One logged event per key per this long. */
export const LOG_LIMIT_INTERVAL_MS = 10_000;
/** Keys remembered; each costs one small object. */
export const LOG_LIMIT_MAX_KEYS = 1024;

interface KeyState {
  /** Clock ms when the key last logged. */
  last: number;
  suppressed: number;
  /** The message of the key's events, for its suppression report. */
  msg: string;
}

export interface LogLimiterOptions {
  log: Logger;
  intervalMs?: number;
  maxKeys?: number;
  clock?: { now(): number };
  /** Counts every suppressed event (edgemesh_log_suppressed_total). */
  suppressedTotal?: Counter;
}

export class LogLimiter {
  readonly #keys = new Map<string, KeyState>();
  readonly #log: Logger;
  readonly #interval: number;
  readonly #max: number;
  readonly #clock: { now(): number };
  readonly #total: Counter | undefined;
  /** Suppressed events of keys evicted to make room, not yet reported. */
  #evictedKeys = 0;
  #evictedSuppressed = 0;

  constructor(o: LogLimiterOptions) {
    this.#log = o.log;
    this.#interval = o.intervalMs ?? LOG_LIMIT_INTERVAL_MS;
    this.#max = o.maxKeys ?? LOG_LIMIT_MAX_KEYS;
    this.#clock = o.clock ?? Date;
    this.#total = o.suppressedTotal;
  }

  /**
   * An event for `key`. Returns -1 when it is suppressed (do not log); otherwise log it now,
   * and the return value is how many of its kind were suppressed since the last one logged.
   */
  admit(key: string, msg: string): number {
    const now = this.#clock.now();
    const s = this.#keys.get(key);
    if (s !== undefined) {
      if (now - s.last < this.#interval) {
        s.suppressed++;
        if (this.#total) this.#total.value++;
        return -1;
      }
      const n = s.suppressed;
      s.suppressed = 0;
      s.last = now;
      // Most recently logged last: the oldest key is the first evicted.
      this.#keys.delete(key);
      this.#keys.set(key, s);
      return n;
    }
    if (this.#keys.size >= this.#max) this.#evictOldest();
    this.#keys.set(key, { last: now, suppressed: 0, msg });
    return 0;
  }

  /** Report keys whose interval ended with events suppressed, and forget idle keys. */
  flush(): void {
    const now = this.#clock.now();
    for (const [key, s] of this.#keys) {
      if (now - s.last < this.#interval) continue;
      if (s.suppressed > 0) this.#log.warn(`${s.msg} (repeats suppressed)`, { key, suppressed: s.suppressed, seconds: this.#interval / 1000 });
      this.#keys.delete(key);
    }
    if (this.#evictedSuppressed > 0) {
      this.#log.warn("repeated warnings suppressed (keys forgotten to bound memory)", { keys: this.#evictedKeys, suppressed: this.#evictedSuppressed });
    }
    this.#evictedKeys = 0;
    this.#evictedSuppressed = 0;
  }

  get size(): number {
    return this.#keys.size;
  }

  #evictOldest(): void {
    for (const [key, s] of this.#keys) {
      this.#keys.delete(key);
      if (s.suppressed > 0) {
        this.#evictedKeys++;
        this.#evictedSuppressed += s.suppressed;
      }
      return;
    }
  }
}
