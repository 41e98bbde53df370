// Benchmarks other parts of the project own (bench/dns.bench.ts, bench/kube-scale.bench.ts) print
// JSON in their own shape. This turns what they print into Results: an array of Result-like
// objects is taken as is; an object is flattened, every finite number becoming one Result named
// "<prefix>.<path>" (a key that already starts with the prefix keeps its name), with keys that
// say "ratio" gated as ratios. A "targets" object is the benchmark restating its goals, not a
// measurement: it is left out (the goals live in floors.json's target column).

import type { Result } from "./types.ts";

/** The last JSON value on its own line(s) of `stdout` (objects or arrays), or undefined. */
export function lastJson(stdout: string): unknown {
  const lines = stdout.split("\n").map((l) => l.trim()).filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    const line = lines[i]!;
    if (!line.startsWith("{") && !line.startsWith("[")) continue;
    try {
      return JSON.parse(line);
    } catch {
      // A multi-line pretty-printed document: try from this line to the end.
      try {
        return JSON.parse(lines.slice(i).join("\n"));
      } catch {}
    }
  }
  // Whole output as one document (pretty-printed over many lines).
  try {
    return JSON.parse(stdout);
  } catch {
    return undefined;
  }
}

export function normalizeExternal(prefix: string, doc: unknown): Result[] {
  if (Array.isArray(doc)) return doc.flatMap((item) => (isResultLike(item) ? [asResult(prefix, item)] : []));
  if (doc === null || typeof doc !== "object") return [];
  const obj = doc as Record<string, unknown>;
  if (Array.isArray(obj.results)) return normalizeExternal(prefix, obj.results);
  const out: Result[] = [];
  flatten(prefix, "", obj, out);
  return out;
}

function isResultLike(v: unknown): v is Record<string, unknown> & { name: string } {
  return v !== null && typeof v === "object" && typeof (v as { name?: unknown }).name === "string";
}

function named(prefix: string, name: string): string {
  return name.startsWith(`${prefix}.`) ? name : `${prefix}.${name}`;
}

function asResult(prefix: string, item: Record<string, unknown> & { name: string }): Result {
  const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : undefined);
  const value = num(item.value) ?? num(item.ratio) ?? null;
  const ratio = num(item.ratio) ?? (/ratio/i.test(item.name) ? value : undefined);
  const ref = item.reference as { name?: unknown; value?: unknown } | undefined;
  return {
    name: named(prefix, item.name),
    unit: typeof item.unit === "string" ? item.unit : value === ratio && ratio !== undefined ? "x" : "",
    value,
    ...(ratio !== undefined ? { ratio } : {}),
    ...(ref && typeof ref.name === "string" && num(ref.value) !== undefined ? { reference: { name: ref.name, value: num(ref.value)! } } : {}),
    ...(Array.isArray(item.runs) ? { runs: item.runs.filter((x): x is number => typeof x === "number") } : {}),
    ...(typeof item.notMeasured === "string" ? { notMeasured: item.notMeasured } : {}),
    ...(typeof item.error === "string" ? { error: item.error } : {}),
    ...(typeof item.note === "string" ? { note: item.note } : {}),
  };
}

function flatten(prefix: string, path: string, obj: Record<string, unknown>, out: Result[]): void {
  for (const [key, v] of Object.entries(obj)) {
    if (key === "targets") continue;
    const name = path ? `${path}.${key}` : key;
    if (typeof v === "number" && Number.isFinite(v)) {
      const isRatio = /ratio/i.test(key);
      out.push({ name: named(prefix, name), unit: isRatio ? "x" : unitFromKey(key), value: v, ...(isRatio ? { ratio: v } : {}) });
    } else if (v !== null && typeof v === "object" && !Array.isArray(v)) flatten(prefix, name, v as Record<string, unknown>, out);
  }
}

/** "first_ready_ms" -> "ms", "rss_mib" -> "MiB", "qps" -> "q/s"; "" when the key does not say. */
function unitFromKey(key: string): string {
  const k = key.toLowerCase();
  if (/(^|_)ms$|Ms$/.test(key) || k.endsWith("_ms")) return "ms";
  if (k.endsWith("mib")) return "MiB";
  if (k.endsWith("mb")) return "MB";
  if (k.endsWith("qps")) return "q/s";
  if (k.endsWith("_s") || k.endsWith("seconds")) return "s";
  return "";
}
