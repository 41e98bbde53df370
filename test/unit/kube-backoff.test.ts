import { describe, expect, test } from "bun:test";
import { backoffDelay } from "../../src/control/kube/deps.ts";

describe("reconnect backoff", () => {
  test("doubles from the initial delay up to the cap", () => {
    const top = () => 0.999999;
    expect([1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, 800, 30_000, top))).toEqual([800, 1600, 3200, 6400, 12800, 25600, 30000]);
    expect(backoffDelay(500, 800, 30_000, top)).toBe(30_000);
  });

  test("jitter spreads each step over its upper half", () => {
    expect(backoffDelay(3, 800, 30_000, () => 0)).toBe(1600);
    const seen = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const d = backoffDelay(3, 800, 30_000, Math.random);
      expect(d).toBeGreaterThanOrEqual(1600);
      expect(d).toBeLessThanOrEqual(3200);
      seen.add(d);
    }
    expect(seen.size).toBeGreaterThan(50);
  });
});
