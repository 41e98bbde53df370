// Runs the mitata scenarios registered by a micro benchmark file and turns them into gate
// Results. Standalone (`bun bench/micro/lb.bench.ts`) it prints mitata's own table; with --json
// (how check.ts runs it, one process per file so JIT state does not leak between files) it prints
// the Results as one JSON line.

import { bench, measure, run } from "mitata";
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

/**
 * mitata times a nanosecond scenario in batches of 4096 calls only when its first call took under
 * 500 us and one of the next two under 65 us; otherwise every sample is ONE call between two
 * clock reads and two heap reads (`bun:jsc` memoryUsage, a syscall), which measures the harness:
 * a 10 ns pick showed as 130-330 ns and ~90 B "allocated" per call. A first call that builds
 * per-table state (a hash ring: ~1.3 ms) or lands in a busy slice of a shared 2-core machine
 * (2026-12-04: every LB pick) is enough. So nanosecond scenarios are registered here: each is
 * called WARM_CALLS times before mitata sees it, and a result that still was not batched is
 * measured again or refused, never reported.
 */
const WARM_CALLS = 20_000;
const REMEASURE_ATTEMPTS = 3;
const nanoScenarios = new Map<string, () => unknown>();

/** Register a scenario that takes nanoseconds per call (warmed, and gated only when batched). */
export function nano(name: string, fn: () => unknown): void {
  nanoScenarios.set(name, fn);
  bench(name, fn);
}

interface MitataStats extends Stats {
  ticks: number;
  samples: number[];
}

const batched = (s: MitataStats) => s.ticks > s.samples.length;

/** Run everything registered with mitata's bench() (and nano()); stats by scenario name. */
export async function runScenarios(): Promise<Map<string, Stats>> {
  for (const fn of nanoScenarios.values()) for (let k = 0; k < WARM_CALLS; k++) fn();
  const { benchmarks } = await run({ format: jsonMode ? "quiet" : "mitata", colors: false });
  const out = new Map<string, Stats>();
  for (const trial of benchmarks) {
    const first = trial.runs[0];
    if (!first || first.error || !first.stats) throw new Error(`scenario ${trial.alias} failed: ${String(first?.error)}`);
    let stats = first.stats as unknown as MitataStats;
    const fn = nanoScenarios.get(trial.alias);
    for (let attempt = 0; fn !== undefined && !batched(stats); attempt++) {
      if (attempt === REMEASURE_ATTEMPTS) {
        throw new Error(`scenario ${trial.alias}: mitata timed single calls ${REMEASURE_ATTEMPTS + 1} times (p50 ${stats.p50} ns), not batches: the number would be the clock's, not the scenario's`);
      }
      stats = (await measure(fn)) as unknown as MitataStats;
    }
    out.set(trial.alias, stats);
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
