// The data the benchmark gate passes around: what a benchmark reports (Result), what the repo
// demands of it (Floor), and the verdict for one row of the table (Row). Plain JSON shapes so
// results/latest.json is readable by anything.

/** One measurement. A benchmark with an in-run reference fills `reference` and `ratio`. */
export interface Result {
  /** Stable dotted name, the key into floors.json: "tcp.bulk.proxy", "compile.10k_services". */
  readonly name: string;
  /** Our number (median of the repeats), in `unit`; null when not measured. */
  readonly value: number | null;
  /** "Gbit/s", "req/s", "ms", "MB", "ns/op", "objects/chunk", "x". */
  readonly unit: string;
  /** The in-run reference this result is compared against, in the same unit. */
  readonly reference?: { readonly name: string; readonly value: number };
  /** value relative to reference, oriented so that higher is better; null when not measured. */
  readonly ratio?: number | null;
  /** The gated quantity (ratio if there is one, else value) of every repeat, for ranges. */
  readonly runs?: readonly number[];
  /** Set when the benchmark could not run for a known reason (a module not landed yet). */
  readonly notMeasured?: string;
  /** Set when the benchmark tried and failed: always a gate failure. */
  readonly error?: string;
  /** Free text shown under the table (what limits the number, what was measured). */
  readonly note?: string;
}

export interface Floor {
  /** Which field of the Result is gated: "ratio" or "value". */
  readonly on: "ratio" | "value";
  /** "min": the gated number must be >= limit (ratios, rates); "max": <= limit (ms, MB). */
  readonly direction: "min" | "max";
  /** What CI demands: a safe margin from what was measured. */
  readonly limit: number;
  /** What the issue asks for, same direction (shown in its own column, never gates). */
  readonly target?: number;
  /** What was measured when, and why this margin. */
  readonly comment: string;
}

export type Floors = ReadonlyMap<string, Floor>;

export type Status = "PASS" | "FAIL" | "ERROR" | "MISSING" | "NOT MEASURED" | "INFO";

/** One line of the verdict table. */
export interface Row {
  readonly name: string;
  readonly result: Result | undefined;
  readonly floor: Floor | undefined;
  /** The number compared with the floor (null when there is none). */
  readonly gated: number | null;
  readonly status: Status;
  /** True/false when a target exists and the gated number is known. */
  readonly targetMet: boolean | undefined;
}
