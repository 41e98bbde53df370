// One VirtualService's routes, compiled: http[] (matches, weighted destinations, rewrite, header
// changes, timeout, retries), tcp[] and tls[]. Everything EdgeMesh ignores or we do not carry
// out is named in a warning instead of silently dropped. A route whose matches cannot compile
// (a bad regex) is left out entirely: routing it without the failed condition would send
// traffic somewhere the author did not ask for.

import type { KubeObject } from "../objects.ts";
import { compileDestinations, type ServiceIndex } from "./destinations.ts";
import { compileStringMatch, MatchError, parseDuration } from "./match.ts";
import type { HeaderMatch, HeaderOps, HttpMatch, HttpRoute, StreamRoute } from "./types.ts";

/** Istio's default: two retries on connect failure. */
export const DEFAULT_RETRIES = 2;

const UNSUPPORTED_HTTP = ["redirect", "directResponse", "delegate", "mirror", "mirrors", "mirrorPercentage", "fault", "corsPolicy"] as const;

export interface CompiledVirtualService {
  /** "namespace/name" */
  readonly key: string;
  readonly namespace: string;
  readonly hosts: readonly string[];
  /** Gateway references as written. */
  readonly gateways: readonly string[];
  readonly http: readonly HttpRoute[];
  readonly tcp: readonly (StreamRoute & { readonly ports: readonly number[] })[];
  readonly tls: readonly (StreamRoute & { readonly ports: readonly number[]; readonly sniHosts: readonly string[] })[];
}

export interface VsContext {
  services: ServiceIndex;
  clusterDomain: string;
  warn: (msg: string) => void;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

function strings(v: unknown): string[] {
  return Array.isArray(v) ? v.filter((s): s is string => typeof s === "string" && s.trim() !== "").map((s) => s.trim()) : [];
}

export function compileVirtualService(vs: KubeObject, ctx: VsContext): CompiledVirtualService | null {
  const namespace = vs.metadata.namespace || "default";
  const key = `${namespace}/${vs.metadata.name}`;
  const name = `VirtualService ${key}`;
  const warn = (msg: string) => ctx.warn(`${name}: ${msg}`);
  const spec = vs.spec;
  if (!isRecord(spec)) {
    warn("spec is missing or not an object; ignored");
    return null;
  }
  const hosts = strings(spec.hosts).map((h) => h.toLowerCase());
  if (hosts.length === 0) {
    warn("spec.hosts is empty; ignored");
    return null;
  }
  const gateways = strings(spec.gateways);
  const http: HttpRoute[] = [];
  if (spec.http !== undefined && !Array.isArray(spec.http)) warn("spec.http is not a list; ignored");
  (Array.isArray(spec.http) ? spec.http : []).forEach((r: unknown, i: number) => {
    const route = compileHttpRoute(r, i, key, namespace, ctx, warn);
    if (route !== null) http.push(route);
  });
  const tcp = streamRoutes(spec.tcp, "tcp", key, namespace, ctx, warn).map(({ route, ports }) => Object.freeze({ ...route, ports }));
  const tls = streamRoutes(spec.tls, "tls", key, namespace, ctx, warn).map(({ route, ports, sni }) => Object.freeze({ ...route, ports, sniHosts: sni }));
  return Object.freeze({ key, namespace, hosts: Object.freeze(hosts), gateways: Object.freeze(gateways), http: Object.freeze(http), tcp: Object.freeze(tcp), tls: Object.freeze(tls) });
}

function compileHttpRoute(r: unknown, i: number, vsKey: string, namespace: string, ctx: VsContext, warn: (msg: string) => void): HttpRoute | null {
  const field = `spec.http[${i}]`;
  if (!isRecord(r)) {
    warn(`${field}: not an object; ignored`);
    return null;
  }
  for (const k of UNSUPPORTED_HTTP) if (r[k] !== undefined) warn(`${field}.${k} is not supported; ignored`);
  let matches: HttpMatch[];
  try {
    matches = compileMatches(r.match, `${field}.match`, warn);
  } catch (err) {
    if (!(err instanceof MatchError)) throw err;
    warn(`${err.message}; route ${field} ignored`);
    return null;
  }
  const { destinations, totalWeight } = compileDestinations(r.route, `${field}.route`, namespace, ctx.services, ctx.clusterDomain, warn);
  if (destinations.length === 0) {
    warn(`${field}: no route destination; ignored`);
    return null;
  }
  let rewriteUri: string | null = null;
  let rewriteAuthority: string | null = null;
  if (r.rewrite !== undefined) {
    if (!isRecord(r.rewrite)) warn(`${field}.rewrite: not an object; ignored`);
    else {
      if (typeof r.rewrite.uri === "string") rewriteUri = r.rewrite.uri;
      else if (r.rewrite.uri !== undefined) warn(`${field}.rewrite.uri: expected a string; ignored`);
      if (typeof r.rewrite.authority === "string" && r.rewrite.authority !== "") rewriteAuthority = r.rewrite.authority;
      else if (r.rewrite.authority !== undefined) warn(`${field}.rewrite.authority: expected a host name; ignored`);
      if (r.rewrite.uriRegexRewrite !== undefined) warn(`${field}.rewrite.uriRegexRewrite is not supported; ignored`);
    }
  }
  let timeoutMs = 0;
  let retries = DEFAULT_RETRIES;
  let perTryTimeoutMs = 0;
  try {
    if (r.timeout !== undefined) timeoutMs = parseDuration(r.timeout, `${field}.timeout`);
    if (r.retries !== undefined) {
      if (!isRecord(r.retries)) throw new MatchError(`${field}.retries`, "expected an object");
      const a = r.retries.attempts;
      if (a !== undefined) {
        if (typeof a !== "number" || !Number.isInteger(a) || a < 0) throw new MatchError(`${field}.retries.attempts`, `expected an integer >= 0, got ${JSON.stringify(a)}`);
        retries = a;
      }
      if (r.retries.perTryTimeout !== undefined) perTryTimeoutMs = parseDuration(r.retries.perTryTimeout, `${field}.retries.perTryTimeout`);
      if (typeof r.retries.retryOn === "string" && !/^(connect-failure|refused-stream|reset)(,(connect-failure|refused-stream|reset|gateway-error|5xx|retriable-4xx|retriable-status-codes))*$/.test(r.retries.retryOn)) {
        warn(`${field}.retries.retryOn ${JSON.stringify(r.retries.retryOn)}: only connect failures are retried (a request is never sent twice)`);
      }
    }
  } catch (err) {
    if (!(err instanceof MatchError)) throw err;
    warn(`${err.message}; default used`);
  }
  let requestHeaders: HeaderOps | null = null;
  let responseHeaders: HeaderOps | null = null;
  if (r.headers !== undefined) {
    if (!isRecord(r.headers)) warn(`${field}.headers: not an object; ignored`);
    else {
      requestHeaders = headerOps(r.headers.request, `${field}.headers.request`, warn);
      responseHeaders = headerOps(r.headers.response, `${field}.headers.response`, warn);
    }
  }
  const routeName = typeof r.name === "string" && /^[A-Za-z0-9._-]{1,63}$/.test(r.name) ? r.name : `http[${i}]`;
  return Object.freeze({
    id: `${vsKey}:${routeName}`,
    virtualService: vsKey,
    matches: Object.freeze(matches),
    destinations: Object.freeze(destinations),
    totalWeight,
    rewriteUri,
    rewriteAuthority,
    requestHeaders,
    responseHeaders,
    timeoutMs,
    retries,
    perTryTimeoutMs,
  });
}

function compileMatches(value: unknown, field: string, warn: (msg: string) => void): HttpMatch[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new MatchError(field, "expected a list");
  const out: HttpMatch[] = [];
  value.forEach((m: unknown, j: number) => {
    const f = `${field}[${j}]`;
    if (!isRecord(m)) throw new MatchError(f, "expected an object");
    for (const k of ["sourceLabels", "sourceNamespace", "gateways", "scheme", "statPrefix"]) {
      if (m[k] !== undefined) warn(`${f}.${k} is not supported; condition ignored`);
    }
    const ignoreUriCase = m.ignoreUriCase === true;
    const uri = m.uri === undefined ? null : compileStringMatch(m.uri, `${f}.uri`, ignoreUriCase);
    const method = m.method === undefined ? null : compileStringMatch(m.method, `${f}.method`);
    const authority = m.authority === undefined ? null : compileStringMatch(m.authority, `${f}.authority`, true);
    const headers = headerMatches(m.headers, `${f}.headers`);
    const withoutHeaders = headerMatches(m.withoutHeaders, `${f}.withoutHeaders`);
    const queryParams = isRecord(m.queryParams)
      ? Object.keys(m.queryParams)
          .sort()
          .map((name) => Object.freeze({ name, match: compileStringMatch((m.queryParams as Record<string, unknown>)[name], `${f}.queryParams.${name}`) }))
      : [];
    let port = 0;
    if (m.port !== undefined) {
      if (typeof m.port !== "number" || !Number.isInteger(m.port) || m.port < 1 || m.port > 65535) throw new MatchError(`${f}.port`, `expected a port number, got ${JSON.stringify(m.port)}`);
      port = m.port;
    }
    out.push(Object.freeze({ uri, method, authority, headers, withoutHeaders, queryParams: Object.freeze(queryParams), port, ignoreUriCase }));
  });
  return out;
}

function headerMatches(value: unknown, field: string): readonly HeaderMatch[] {
  if (value === undefined || value === null) return Object.freeze([]);
  if (!isRecord(value)) throw new MatchError(field, "expected a map of header name to {exact|prefix|regex}");
  const out: HeaderMatch[] = [];
  for (const name of Object.keys(value).sort()) {
    if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new MatchError(`${field}.${name}`, "not a valid header name");
    out.push(Object.freeze({ name: name.toLowerCase(), match: compileStringMatch(value[name], `${field}.${name}`) }));
  }
  return Object.freeze(out);
}

function headerOps(value: unknown, field: string, warn: (msg: string) => void): HeaderOps | null {
  if (value === undefined || value === null) return null;
  if (!isRecord(value)) {
    warn(`${field}: not an object; ignored`);
    return null;
  }
  const pairs = (v: unknown, f: string): (readonly [string, string])[] => {
    if (v === undefined) return [];
    if (!isRecord(v)) {
      warn(`${f}: expected a map of header name to value; ignored`);
      return [];
    }
    const out: (readonly [string, string])[] = [];
    for (const [k, val] of Object.entries(v)) {
      if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(k) || typeof val !== "string" || /[\r\n\0]/.test(val)) {
        warn(`${f}.${k}: not a valid header name and string value; ignored`);
        continue;
      }
      out.push(Object.freeze([k.toLowerCase(), val] as const));
    }
    return out;
  };
  const remove = Array.isArray(value.remove) ? value.remove.filter((s): s is string => typeof s === "string").map((s) => s.toLowerCase()) : [];
  if (value.remove !== undefined && !Array.isArray(value.remove)) warn(`${field}.remove: expected a list of header names; ignored`);
  const ops = { set: Object.freeze(pairs(value.set, `${field}.set`)), add: Object.freeze(pairs(value.add, `${field}.add`)), remove: Object.freeze(remove) };
  if (ops.set.length === 0 && ops.add.length === 0 && ops.remove.length === 0) return null;
  return Object.freeze(ops);
}

function streamRoutes(
  value: unknown,
  kind: "tcp" | "tls",
  vsKey: string,
  namespace: string,
  ctx: VsContext,
  warn: (msg: string) => void,
): { route: StreamRoute; ports: readonly number[]; sni: readonly string[] }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    warn(`spec.${kind} is not a list; ignored`);
    return [];
  }
  const out: { route: StreamRoute; ports: readonly number[]; sni: readonly string[] }[] = [];
  value.forEach((r: unknown, i: number) => {
    const field = `spec.${kind}[${i}]`;
    if (!isRecord(r)) {
      warn(`${field}: not an object; ignored`);
      return;
    }
    const ports: number[] = [];
    const sni: string[] = [];
    if (Array.isArray(r.match)) {
      r.match.forEach((m: unknown, j: number) => {
        if (!isRecord(m)) return;
        if (typeof m.port === "number") ports.push(m.port);
        if (kind === "tls") sni.push(...strings(m.sniHosts).map((h) => h.toLowerCase()));
        for (const k of ["destinationSubnets", "sourceLabels", "sourceNamespace", "gateways"]) {
          if (m[k] !== undefined) warn(`${field}.match[${j}].${k} is not supported; condition ignored`);
        }
      });
    }
    const { destinations, totalWeight } = compileDestinations(r.route, `${field}.route`, namespace, ctx.services, ctx.clusterDomain, warn);
    if (destinations.length === 0) {
      warn(`${field}: no route destination; ignored`);
      return;
    }
    const route: StreamRoute = Object.freeze({ id: `${vsKey}:${kind}[${i}]`, virtualService: vsKey, destinations: Object.freeze(destinations), totalWeight });
    out.push({ route, ports: Object.freeze(ports), sni: Object.freeze(sni) });
  });
  return out;
}
