import { describe, expect, test } from "bun:test";
import { createManualClock } from "../../src/control/clock.ts";
import { createRunner } from "../../src/control/runner.ts";

function setup(minIntervalMs: number, maxIntervalMs = 0) {
  const clock = createManualClock(1_000);
  const runs: number[] = [];
  const errors: unknown[] = [];
  let fail = false;
  const runner = createRunner({
    run: () => {
      runs.push(clock.now());
      if (fail) throw new Error("boom");
    },
    minIntervalMs,
    maxIntervalMs,
    clock,
    onError: (e) => errors.push(e),
  });
  return { clock, runs, errors, runner, setFail: (v: boolean) => (fail = v) };
}

describe("manual clock", () => {
  test("fires due timers in order, including ones scheduled while firing, and not cleared ones", () => {
    const clock = createManualClock(0);
    const fired: string[] = [];
    clock.setTimeout(() => fired.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => {
      fired.push(`a@${clock.now()}`);
      clock.setTimeout(() => fired.push(`c@${clock.now()}`), 5);
    }, 10);
    const cleared = clock.setTimeout(() => fired.push("never"), 15);
    clock.clearTimeout(cleared);
    clock.setTimeout(() => fired.push("late"), 100);
    clock.advance(30);
    expect(fired).toEqual(["a@10", "c@15", "b@20"]);
    expect(clock.now()).toBe(30);
    expect(clock.pending()).toBe(1);
  });
});

describe("bounded frequency runner", () => {
  test("a burst of requests in one tick becomes one run", () => {
    const { clock, runs, runner } = setup(100);
    for (let i = 0; i < 50; i++) runner.request();
    expect(runs).toEqual([]);
    clock.advance(0);
    expect(runs).toEqual([1_000]);
    clock.advance(1_000);
    expect(runs.length).toBe(1);
  });

  test("requests inside the min interval schedule exactly one run at its end", () => {
    const { clock, runs, runner } = setup(100);
    runner.request();
    clock.advance(0);
    clock.advance(10);
    runner.request();
    clock.advance(30);
    runner.request();
    runner.request();
    clock.advance(59);
    expect(runs).toEqual([1_000]);
    clock.advance(1);
    expect(runs).toEqual([1_000, 1_100]);
    clock.advance(500);
    expect(runs).toEqual([1_000, 1_100]);
  });

  test("a request after a quiet period runs at once (next tick)", () => {
    const { clock, runs, runner } = setup(100);
    runner.request();
    clock.advance(0);
    clock.advance(250);
    runner.request();
    clock.advance(0);
    expect(runs).toEqual([1_000, 1_250]);
  });

  test("runs at most once per min interval under a continuous stream of requests", () => {
    const { clock, runs, runner } = setup(100);
    for (let t = 0; t < 1_000; t += 7) {
      runner.request();
      clock.advance(7);
    }
    for (let i = 1; i < runs.length; i++) expect(runs[i]! - runs[i - 1]!).toBeGreaterThanOrEqual(100);
    expect(runs.length).toBeGreaterThanOrEqual(9);
    expect(runs.length).toBeLessThanOrEqual(11);
  });

  test("max interval runs periodically without requests and restarts after each run", () => {
    const { clock, runs, runner } = setup(100, 1_000);
    clock.advance(999);
    expect(runs).toEqual([]);
    clock.advance(1);
    expect(runs).toEqual([2_000]);
    clock.advance(500);
    runner.request();
    clock.advance(0);
    expect(runs).toEqual([2_000, 2_500]);
    clock.advance(999);
    expect(runs.length).toBe(2);
    clock.advance(1);
    expect(runs).toEqual([2_000, 2_500, 3_500]);
  });

  test("retryAfter waits at least the given time and merges with requests", () => {
    const { clock, runs, runner } = setup(100);
    runner.retryAfter(300);
    clock.advance(200);
    runner.request();
    clock.advance(0);
    expect(runs).toEqual([1_200]);
    runner.retryAfter(50);
    clock.advance(99);
    expect(runs).toEqual([1_200]);
    clock.advance(1);
    expect(runs).toEqual([1_200, 1_300]);
  });

  test("a throwing run is reported and the runner keeps working", () => {
    const { clock, runs, errors, runner, setFail } = setup(10);
    setFail(true);
    runner.request();
    clock.advance(0);
    setFail(false);
    runner.request();
    clock.advance(10);
    expect(runs.length).toBe(2);
    expect(errors.length).toBe(1);
  });

  test("stop cancels the pending run and ignores later requests", () => {
    const { clock, runs, runner } = setup(100, 1_000);
    runner.request();
    runner.stop();
    runner.request();
    clock.advance(5_000);
    expect(runs).toEqual([]);
    expect(clock.pending()).toBe(0);
  });
});
