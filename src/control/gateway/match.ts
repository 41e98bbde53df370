// Istio StringMatch and durations, compiled once. A regex is compiled here, with its error named
// by the field it came from, and anchored: Istio's regex is RE2 matched against the whole value
// (Envoy's safe_regex full match), so "/api/.*" must match all of "/api/x", not a substring.

import type { StringMatch } from "./types.ts";

export class MatchError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = "MatchError";
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/**
 * An Istio StringMatch ({exact} | {prefix} | {regex}); null for an empty match `{}` (presence
 * only, for headers). Throws MatchError naming `field` when it is malformed.
 */
export function compileStringMatch(value: unknown, field: string, lowerCase = false): StringMatch | null {
  if (!isRecord(value)) throw new MatchError(field, `expected {exact|prefix|regex: string}, got ${JSON.stringify(value)}`);
  const kinds = (["exact", "prefix", "regex"] as const).filter((k) => value[k] !== undefined && value[k] !== null);
  if (kinds.length === 0) return null;
  if (kinds.length > 1) throw new MatchError(field, `sets more than one of exact, prefix, regex (${kinds.join(", ")})`);
  const kind = kinds[0]!;
  const raw = value[kind];
  if (typeof raw !== "string") throw new MatchError(`${field}.${kind}`, `expected a string, got ${JSON.stringify(raw)}`);
  const v = lowerCase && kind !== "regex" ? raw.toLowerCase() : raw;
  if (kind !== "regex") return Object.freeze({ kind, value: v });
  let re: RegExp;
  try {
    re = new RegExp(`^(?:${raw})$`, lowerCase ? "i" : "");
  } catch (err) {
    throw new MatchError(`${field}.regex`, `invalid regular expression ${JSON.stringify(raw)}: ${(err as Error).message}`);
  }
  // Frozen: test() on a non-global, non-sticky RegExp never writes lastIndex.
  return Object.freeze({ kind, value: raw, re: Object.freeze(re) });
}

/** Does `s` satisfy the match? */
export function stringMatches(m: StringMatch, s: string): boolean {
  switch (m.kind) {
    case "exact":
      return s === m.value;
    case "prefix":
      return s.startsWith(m.value);
    default:
      return m.re.test(s);
  }
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/**
 * A protobuf Duration as Istio writes it ("10s", "0.5s") or a Go duration ("500ms", "1m30s").
 * Returns ms. Throws MatchError naming the field.
 */
export function parseDuration(value: unknown, field: string): number {
  if (typeof value === "number" && value >= 0) return value * 1000;
  if (typeof value !== "string" || value.trim() === "") throw new MatchError(field, `expected a duration such as "5s", got ${JSON.stringify(value)}`);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h)/y;
  const s = value.trim();
  let total = 0;
  let at = 0;
  while (at < s.length) {
    re.lastIndex = at;
    const m = re.exec(s);
    if (m === null) throw new MatchError(field, `expected a duration such as "5s" or "500ms", got ${JSON.stringify(value)}`);
    total += Number(m[1]) * UNIT_MS[m[2]!]!;
    at = re.lastIndex;
  }
  return Math.round(total);
}
