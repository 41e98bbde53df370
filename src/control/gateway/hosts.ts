// Host names: normalising the Host header / SNI, building a frozen HostIndex (exact names,
// "*.suffix" wildcards longest first, "*"), and looking a name up in it. The lookup runs per
// request on the data plane: one property read for an exact hit, a short scan for wildcards.

import { isIP } from "node:net";
import type { HostIndex } from "./types.ts";

/**
 * The host part of a Host header or SNI, lower case, without port or trailing dot.
 * "[::1]:8080" -> "::1". Returns "" for nothing usable.
 */
export function normalizeHost(raw: string): string {
  let h = raw.trim();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end > 0 ? h.slice(1, end).toLowerCase() : "";
  }
  const colon = h.indexOf(":");
  if (colon >= 0) h = h.slice(0, colon);
  if (h.endsWith(".")) h = h.slice(0, -1);
  return h.toLowerCase();
}

export function isIpHost(host: string): boolean {
  return host !== "" && isIP(host) !== 0;
}

/** Mutable builder; build() freezes. set() replaces: callers that want "first wins" check get(). */
export class HostIndexBuilder<T> {
  readonly #exact = new Map<string, T>();
  readonly #wild = new Map<string, T>();
  #any: T | null = null;
  #first: T | null = null;

  /** The value stored for `host` now (to merge into it), or undefined. */
  get(host: string): T | undefined {
    if (host === "*") return this.#any ?? undefined;
    if (host.startsWith("*.")) return this.#wild.get(host.slice(1));
    return this.#exact.get(host);
  }

  set(host: string, value: T): void {
    if (this.#first === null) this.#first = value;
    if (host === "*") this.#any = value;
    else if (host.startsWith("*.")) this.#wild.set(host.slice(1), value);
    else this.#exact.set(host, value);
  }

  get size(): number {
    return this.#exact.size + this.#wild.size + (this.#any === null ? 0 : 1);
  }

  build(): HostIndex<T> {
    const exact = Object.create(null) as Record<string, T>;
    for (const [k, v] of this.#exact) exact[k] = v;
    const wildcards = [...this.#wild]
      .map(([suffix, value]) => Object.freeze({ suffix, value }))
      .sort((a, b) => b.suffix.length - a.suffix.length || (a.suffix < b.suffix ? -1 : 1));
    return Object.freeze({ exact: Object.freeze(exact), wildcards: Object.freeze(wildcards), any: this.#any, first: this.#first });
  }
}

/** The value for a normalised host: exact, then the longest wildcard, then "*". */
export function lookupHost<T>(index: HostIndex<T>, host: string): T | null {
  const hit = index.exact[host];
  if (hit !== undefined) return hit;
  const w = index.wildcards;
  for (let i = 0; i < w.length; i++) {
    const e = w[i]!;
    // "*.example.com" matches "a.example.com" and "a.b.example.com" (Istio), not "example.com".
    if (host.length > e.suffix.length && host.endsWith(e.suffix)) return e.value;
  }
  return index.any;
}

/**
 * Does a name pattern (Gateway server host or VirtualService host, "*" / "*.x" / "x") cover
 * `name`? Used at compile time to bind VirtualService hosts to Gateway servers.
 */
export function hostCovers(pattern: string, name: string): boolean {
  if (pattern === "*") return true;
  if (pattern.startsWith("*.")) {
    const suffix = pattern.slice(1);
    if (name.startsWith("*.")) return name.slice(1).endsWith(suffix);
    return name.length > suffix.length && name.endsWith(suffix);
  }
  return pattern === name;
}

/** The more specific of two overlapping host patterns (the one a request must match for both). */
export function narrower(a: string, b: string): string {
  if (a === "*") return b;
  if (b === "*") return a;
  if (a.startsWith("*.") && !b.startsWith("*.")) return b;
  if (b.startsWith("*.") && !a.startsWith("*.")) return a;
  return a.length >= b.length ? a : b;
}
