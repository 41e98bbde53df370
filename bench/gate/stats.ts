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

/**
 * The same benchmark run in several processes (a micro file: JIT decisions differ from process to
 * process and moved one ratio 0.33..1.44 between runs): one Result per name, with the median of
 * the gated number (ratio, else value) and of the value, the per-process numbers as runs. A name
 * with an error or not-measured in any process keeps that first such result.
 */
export function combineProcesses(perProcess: readonly (readonly Result[])[]): Result[] {
  const byName = new Map<string, Result[]>();
  for (const results of perProcess) for (const r of results) byName.set(r.name, [...(byName.get(r.name) ?? []), r]);
  const out: Result[] = [];
  for (const [, rs] of byName) {
    const bad = rs.find((r) => r.error !== undefined || r.notMeasured !== undefined || r.value === null);
    if (bad || rs.length === 1) {
      out.push(bad ?? rs[0]!);
      continue;
    }
    const first = rs[0]!;
    const values = rs.map((r) => r.value as number);
    const ratios = rs.map((r) => r.ratio).filter((x): x is number => typeof x === "number");
    const refs = rs.map((r) => r.reference?.value).filter((x): x is number => typeof x === "number");
    const hasRatio = ratios.length === rs.length;
    out.push({
      ...first,
      value: median(values),
      ...(hasRatio ? { ratio: median(ratios) } : {}),
      ...(first.reference && refs.length === rs.length ? { reference: { name: first.reference.name, value: median(refs) } } : {}),
      runs: hasRatio ? ratios : values,
    });
  }
  return out;
}
