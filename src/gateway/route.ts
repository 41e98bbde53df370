// Per-request routing decisions, pure functions over the current GatewayTable: which virtual host
// (by Host), which route (ordered first match), which weighted destination. Tested without
// sockets; the connection code only carries the decision out.

import { isIpHost, lookupHost, stringMatches, type GatewayPort, type HttpMatch, type HttpRoute, type StreamRoute, type VirtualHost, type Destination, type StringMatch } from "../control/index.ts";

/** What routing reads of a request (RequestHead satisfies it). */
export interface RoutableRequest {
  readonly host: string;
  readonly method: string;
  /** Path and query as sent. */
  readonly target: string;
  readonly path: string;
  readonly query: string;
  header(lower: string): string | null;
}

/**
 * The virtual host for a (normalised) Host on an HTTP/HTTPS port: exact name, longest wildcard,
 * "*"; a request by IP address or without a Host goes to the port's first virtual host, as
 * EdgeMesh lets any IP Host through. null: nobody serves this host (404).
 */
export function selectVirtualHost(port: GatewayPort, host: string): VirtualHost | null {
  const index = port.http;
  if (index === null) return null;
  const hit = lookupHost(index, host);
  if (hit !== null) return hit;
  return host === "" || isIpHost(host) ? index.first : null;
}

/**
 * The first route whose matches accept the request (a route without matches takes all). The
 * match that accepted it goes to `sel` (rewrite.uri replaces its prefix).
 */
export function selectRoute(vh: VirtualHost, req: RoutableRequest, listenPort: number, sel?: { match: HttpMatch | null }): HttpRoute | null {
  const routes = vh.routes;
  for (let i = 0; i < routes.length; i++) {
    const r = routes[i]!;
    if (r.matches.length === 0) {
      if (sel !== undefined) sel.match = null;
      return r;
    }
    for (let j = 0; j < r.matches.length; j++) {
      if (requestMatches(r.matches[j]!, req, listenPort)) {
        if (sel !== undefined) sel.match = r.matches[j]!;
        return r;
      }
    }
  }
  return null;
}

export function requestMatches(m: HttpMatch, req: RoutableRequest, listenPort: number): boolean {
  if (m.port !== 0 && m.port !== listenPort) return false;
  if (m.uri !== null && !uriMatches(m.uri, req, m.ignoreUriCase)) return false;
  if (m.method !== null && !stringMatches(m.method, req.method)) return false;
  if (m.authority !== null && !stringMatches(m.authority, req.host)) return false;
  for (let i = 0; i < m.headers.length; i++) {
    const hm = m.headers[i]!;
    const v = req.header(hm.name);
    if (v === null || (hm.match !== null && !stringMatches(hm.match, v))) return false;
  }
  for (let i = 0; i < m.withoutHeaders.length; i++) {
    const hm = m.withoutHeaders[i]!;
    const v = req.header(hm.name);
    if (v !== null && (hm.match === null || stringMatches(hm.match, v))) return false;
  }
  for (let i = 0; i < m.queryParams.length; i++) {
    const q = m.queryParams[i]!;
    const v = queryParam(req.query, q.name);
    if (v === null || (q.match !== null && !stringMatches(q.match, v))) return false;
  }
  return true;
}

function uriMatches(m: StringMatch, req: RoutableRequest, ignoreCase: boolean): boolean {
  // Envoy: a prefix is compared with the whole :path (query included), exact and regex with
  // the path without the query string.
  const s = m.kind === "prefix" ? req.target : req.path;
  if (m.kind === "regex") return m.re.test(s); // compiled with "i" when ignoreUriCase
  return stringMatches(m, ignoreCase ? s.toLowerCase() : s);
}

/** Value of the first query parameter `name` (raw, not percent-decoded), or null. */
export function queryParam(query: string, name: string): string | null {
  if (query === "") return null;
  let start = 0;
  while (start <= query.length) {
    let amp = query.indexOf("&", start);
    if (amp < 0) amp = query.length;
    const eq = query.indexOf("=", start);
    const keyEnd = eq >= 0 && eq < amp ? eq : amp;
    if (keyEnd - start === name.length && query.startsWith(name, start)) return eq >= 0 && eq < amp ? query.slice(eq + 1, amp) : "";
    start = amp + 1;
  }
  return null;
}

/** A destination by weight; `random` is in [0, 1). null when the route has none. */
export function pickDestination(route: HttpRoute | StreamRoute, random: () => number): Destination | null {
  const d = route.destinations;
  if (d.length === 0) return null;
  if (d.length === 1) return d[0]!;
  let x = random() * route.totalWeight;
  for (let i = 0; i < d.length; i++) {
    x -= d[i]!.weight;
    if (x < 0) return d[i]!;
  }
  return d[d.length - 1]!;
}

/** The destination after `tried` failed: another one by weight among the rest, else the same. */
export function pickOtherDestination(route: HttpRoute | StreamRoute, tried: Destination, random: () => number): Destination | null {
  const d = route.destinations;
  if (d.length <= 1) return d[0] ?? null;
  let total = 0;
  for (let i = 0; i < d.length; i++) if (d[i] !== tried) total += d[i]!.weight;
  if (total <= 0) return tried;
  let x = random() * total;
  for (let i = 0; i < d.length; i++) {
    if (d[i] === tried) continue;
    x -= d[i]!.weight;
    if (x < 0) return d[i]!;
  }
  return tried;
}
