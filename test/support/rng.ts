/**
 * xorshift32 for fuzz tests: deterministic, so a failure replays from its seed.
 * rng(seed)(n) returns an integer in [0, n).
 */
export function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}
