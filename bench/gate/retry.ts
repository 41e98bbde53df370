// Which benchmark groups get their one re-run: those owning a FAIL or ERROR row. NOT MEASURED
// (known reason), MISSING (no group owns it) and INFO rows never trigger a re-run.

import type { Verdict } from "./evaluate.ts";
import type { Result } from "./types.ts";
import { num } from "./render.ts";

export interface RetryTarget {
  readonly group: string;
  /** "name STATUS number-or-error" per failing row, for the RETRIED line. */
  readonly why: string;
}

export function retryTargets(verdict: Verdict, byGroup: ReadonlyMap<string, readonly Result[]>): RetryTarget[] {
  const out: RetryTarget[] = [];
  for (const [group, results] of byGroup) {
    const names = new Set(results.map((r) => r.name));
    const bad = verdict.rows.filter((r) => (r.status === "FAIL" || r.status === "ERROR") && names.has(r.name));
    if (bad.length === 0) continue;
    const why = bad
      .map((r) => `${r.name} ${r.status} ${r.gated !== null ? num(r.gated) : (r.result?.error ?? "").slice(0, 120)}`)
      .join("; ");
    out.push({ group, why });
  }
  return out;
}
