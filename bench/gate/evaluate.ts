// The verdict: every result against its floor. Pure, so the gate itself is unit-tested.
// A result the benchmark could not take for a known reason (NOT MEASURED) is shown loudly but does
// not fail; a crash (ERROR) or a floor whose benchmark produced nothing at all (MISSING) fails,
// because a gate that silently measures less is no gate.

import type { Floor, Floors, Result, Row, Status } from "./types.ts";

export interface Verdict {
  readonly rows: readonly Row[];
  /** True when no row is FAIL, ERROR or MISSING. */
  readonly ok: boolean;
  readonly counts: Readonly<Record<Status, number>>;
}

const FAILING: ReadonlySet<Status> = new Set(["FAIL", "ERROR", "MISSING"]);

export function evaluate(results: readonly Result[], floors: Floors): Verdict {
  const rows: Row[] = [];
  const seen = new Set<string>();
  for (const result of results) {
    seen.add(result.name);
    rows.push(row(result.name, result, floors.get(result.name)));
  }
  for (const [name, floor] of floors) if (!seen.has(name)) rows.push(row(name, undefined, floor));
  const counts: Record<Status, number> = { PASS: 0, FAIL: 0, ERROR: 0, MISSING: 0, "NOT MEASURED": 0, INFO: 0 };
  for (const r of rows) counts[r.status]++;
  return { rows, ok: rows.every((r) => !FAILING.has(r.status)), counts };
}

/** The number a floor looks at: the ratio or the value, as the floor says. */
export function gatedNumber(result: Result, floor: Floor | undefined): number | null {
  const on = floor?.on ?? (result.ratio !== undefined ? "ratio" : "value");
  const n = on === "ratio" ? result.ratio : result.value;
  return typeof n === "number" && Number.isFinite(n) ? n : null;
}

export function meets(n: number, direction: Floor["direction"], limit: number): boolean {
  return direction === "min" ? n >= limit : n <= limit;
}

function row(name: string, result: Result | undefined, floor: Floor | undefined): Row {
  if (!result) return { name, result, floor, gated: null, status: "MISSING", targetMet: undefined };
  const gated = gatedNumber(result, floor);
  const targetMet = floor?.target !== undefined && gated !== null ? meets(gated, floor.direction, floor.target) : undefined;
  let status: Status;
  if (result.error !== undefined) status = "ERROR";
  else if (result.notMeasured !== undefined) status = "NOT MEASURED";
  else if (!floor) status = "INFO";
  // A floor on a number the benchmark did not produce is a broken benchmark, not a pass.
  else if (gated === null) status = "ERROR";
  else status = meets(gated, floor.direction, floor.limit) ? "PASS" : "FAIL";
  return { name, result, floor, gated, status, targetMet };
}
