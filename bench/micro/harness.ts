// Runs the mitata scenarios registered by a micro benchmark file and turns them into gate
// Results. Standalone (`bun bench/micro/lb.bench.ts`) it prints mitata's own table; with --json
// (how check.ts runs it, one process per file so JIT state does not leak between files) it prints
// the Results as one JSON line.

import { run } from "mitata";
import type { Result } from "../gate/index.ts";

export interface Stats {
  /** Mean ns per iteration. */
  avg: number;
  /** Median ns per iteration (what is reported). */
  p50: number;
  p75: number;
  p25: number;
}

export const jsonMode = process.argv.includes("--json");

/** Run everything registered with mitata's bench(); stats by scenario name. */
export async function runScenarios(): Promise<Map<string, Stats>> {
  const { benchmarks } = await run({ format: jsonMode ? "quiet" : "mitata", colors: false });
  const out = new Map<string, Stats>();
  for (const trial of benchmarks) {
    const first = trial.runs[0];
    if (!first || first.error || !first.stats) throw new Error(`scenario ${trial.alias} failed: ${String(first?.error)}`);
    out.set(trial.alias, first.stats);
  }
  return out;
}

/**
 * ns/op of ours against a reference scenario: ratio = reference ns / our ns (higher is better).
 * Medians, not means: one GC pause or deopt inside a 2-ns loop moves the mean by 10x.
 */
export function nsRatio(name: string, stats: Map<string, Stats>, ours: string, reference: string, note?: string): Result {
  const o = get(stats, ours);
  const r = get(stats, reference);
  return {
    name,
    unit: "ns/op",
    value: o.p50,
    reference: { name: reference, value: r.p50 },
    ratio: r.p50 / o.p50,
    ...(note ? { note } : {}),
  };
}

export function get(stats: Map<string, Stats>, name: string): Stats {
  const s = stats.get(name);
  if (!s) throw new Error(`no mitata scenario named ${JSON.stringify(name)}`);
  return s;
}

export function emit(results: readonly Result[]): void {
  if (jsonMode) console.log(JSON.stringify(results));
  else for (const r of results) console.log(`${r.name}: ${r.value?.toFixed(1)} ${r.unit}${r.ratio ? ` (ratio ${r.ratio.toFixed(3)} vs ${r.reference?.name})` : ""}`);
}
