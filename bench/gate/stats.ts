// Turning repeated measurements into one Result: medians (robust against one noisy repeat on a
// shared 2-core machine) and ranges. Repeats of a macro benchmark interleave ours and the
// reference, so each repeat yields its own ratio and the ratio's median is what is gated.

import type { Result } from "./types.ts";

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** A plain value without reference (compile ms, RSS MB): median of the repeats. */
export function summarize(name: string, unit: string, runs: readonly number[], note?: string): Result {
  return { name, unit, value: median(runs), runs, ...(note ? { note } : {}) };
}

/**
 * Ours against a reference measured in the same repeats. `higherIsBetter` false (ns/op) inverts the
 * ratio so that every ratio reads "1.0 = as good as the reference, higher is better".
 */
export function ratioResult(
  name: string,
  unit: string,
  ours: readonly number[],
  reference: { name: string; runs: readonly number[] },
  options: { higherIsBetter?: boolean; note?: string } = {},
): Result {
  const higher = options.higherIsBetter ?? true;
  const n = Math.min(ours.length, reference.runs.length);
  const ratios: number[] = [];
  for (let i = 0; i < n; i++) {
    const o = ours[i]!;
    const r = reference.runs[i]!;
    ratios.push(higher ? o / r : r / o);
  }
  return {
    name,
    unit,
    value: median(ours),
    reference: { name: reference.name, value: median(reference.runs) },
    ratio: median(ratios),
    runs: ratios,
    ...(options.note ? { note: options.note } : {}),
  };
}
