// The GatewayTable: what the control plane hands to the edge gateway's data plane. Compiled from
// Istio Gateway / VirtualService objects, TLS Secrets, Services (for destination ports) and the
// selected NIC addresses; deeply frozen and published by swapping one reference, like the
// RouteTable. Destinations name ServicePort keys: the data plane reads endpoints and LB policy
// from the current RouteTable, so an endpoint change does not recompile gateway routes.

/** How a port's connections are handled, from the protocol of the Gateway servers on it. */
export type GatewayPortMode =
  /** Plain HTTP/1.x, routed per request (h2c prior knowledge: routed once, passed through). */
  | "HTTP"
  /** TLS terminated with the Secret's certificate (SNI picks it), then as HTTP. */
  | "HTTPS"
  /** Raw TCP to the port's TCP route. */
  | "TCP"
  /** TLS passed through unterminated, routed by the ClientHello's SNI (tls.mode PASSTHROUGH). */
  | "TLS_PASSTHROUGH"
  /** TLS terminated (protocol TLS with a certificate), then raw TCP to the port's TCP route. */
  | "TLS_TERMINATE";

/** A string match of an Istio StringMatch; regex is a full match (Envoy's safe_regex). */
export type StringMatch =
  | { readonly kind: "exact"; readonly value: string }
  | { readonly kind: "prefix"; readonly value: string }
  | { readonly kind: "regex"; readonly value: string; readonly re: RegExp };

export interface HeaderMatch {
  /** Lower case. */
  readonly name: string;
  /** null: the header must be present (Istio's empty match `{}`). */
  readonly match: StringMatch | null;
}

/** One HTTPMatchRequest: every condition set must hold (AND). */
export interface HttpMatch {
  /** Compared with the path without the query string (prefix: with it, as Envoy does). */
  readonly uri: StringMatch | null;
  readonly method: StringMatch | null;
  /** Host header without the port, lower case. */
  readonly authority: StringMatch | null;
  readonly headers: readonly HeaderMatch[];
  /** Headers that must not match (absent, or not matching). */
  readonly withoutHeaders: readonly HeaderMatch[];
  readonly queryParams: readonly { readonly name: string; readonly match: StringMatch | null }[];
  /** Gateway port the request arrived on; 0 = any. */
  readonly port: number;
  readonly ignoreUriCase: boolean;
}

export interface Destination {
  /** "namespace/name" of the Service. */
  readonly service: string;
  /** The Service port (0 when it could not be resolved: requests get 503). */
  readonly port: number;
  /** RouteTable ServicePort key ("namespace/name:port/TCP"); "" when unresolved. */
  readonly key: string;
  /** Relative weight (> 0). */
  readonly weight: number;
  /** As written in the VirtualService, for /routes. */
  readonly host: string;
}

export interface HeaderOps {
  /** Lower-case name and value; replaces any present value. */
  readonly set: readonly (readonly [string, string])[];
  /** Appended. */
  readonly add: readonly (readonly [string, string])[];
  /** Lower case. */
  readonly remove: readonly string[];
}

export interface HttpRoute {
  /** Stable id for metrics and /routes: "namespace/vs:http[i]" or "namespace/vs:<route name>". */
  readonly id: string;
  /** "namespace/name" of the VirtualService. */
  readonly virtualService: string;
  /** Any one may match (OR); empty = every request. */
  readonly matches: readonly HttpMatch[];
  readonly destinations: readonly Destination[];
  readonly totalWeight: number;
  /** rewrite.uri: replaces the matched prefix (prefix match) or the whole path. */
  readonly rewriteUri: string | null;
  /** rewrite.authority: the Host header sent upstream. */
  readonly rewriteAuthority: string | null;
  readonly requestHeaders: HeaderOps | null;
  readonly responseHeaders: HeaderOps | null;
  /** 0 = no timeout. From the request forwarded until the response is complete. */
  readonly timeoutMs: number;
  /** Connect attempts after the first one fails (another endpoint when there is one). */
  readonly retries: number;
  /** Per-attempt connect timeout; 0 = the data plane's default. */
  readonly perTryTimeoutMs: number;
}

/** A tcp[] or tls[] route of a VirtualService: where a whole connection goes. */
export interface StreamRoute {
  readonly id: string;
  readonly virtualService: string;
  readonly destinations: readonly Destination[];
  readonly totalWeight: number;
}

/** Lookup of a value by host name: exact names, "*.suffix" wildcards (longest first), "*". */
export interface HostIndex<T> {
  readonly exact: Readonly<Record<string, T>>;
  /** suffix includes the leading dot: "*.example.com" -> ".example.com". Longest first. */
  readonly wildcards: readonly { readonly suffix: string; readonly value: T }[];
  readonly any: T | null;
  /**
   * The first value added (VirtualService order): where a request by IP address or without a
   * Host goes when no host matches it, as EdgeMesh accepts any IP Host for its VirtualService.
   */
  readonly first: T | null;
}

/** The routes of one host on one port, VirtualServices merged in namespace/name order. */
export interface VirtualHost {
  /** The host names as written (for /routes). */
  readonly hosts: readonly string[];
  readonly routes: readonly HttpRoute[];
}

/** A certificate to serve (from a kubernetes.io/tls Secret) and how. */
export interface TlsServerConfig {
  /** "namespace/secret" */
  readonly secret: string;
  /** Changes whenever the certificate material changes (the data plane caches contexts by it). */
  readonly revision: string;
  readonly cert: string;
  readonly key: string;
  /** ca.crt: client certificates signed by it are required (EdgeMesh) or requested (OPTIONAL_MUTUAL). */
  readonly ca: string | null;
  readonly clientCert: "none" | "require" | "optional";
  /** "TLSv1.2" style, "" = runtime default. */
  readonly minVersion: string;
  readonly maxVersion: string;
  /** OpenSSL cipher list (TLS <= 1.2), "" = default. */
  readonly ciphers: string;
  /** Offer h2 in ALPN (server protocol HTTP2 / GRPC): h2 connections are passed through. */
  readonly h2: boolean;
}

/** One Gateway server as compiled, for /routes. */
export interface ServerRef {
  /** "namespace/gateway" */
  readonly gateway: string;
  readonly index: number;
  readonly name: string;
  readonly protocol: string;
  readonly hosts: readonly string[];
  readonly tlsMode: string;
  readonly credentialName: string;
}

export interface GatewayPort {
  readonly port: number;
  readonly mode: GatewayPortMode;
  readonly servers: readonly ServerRef[];
  /** HTTP / HTTPS: virtual hosts by the request's Host. */
  readonly http: HostIndex<VirtualHost> | null;
  /** HTTPS / TLS_TERMINATE: certificates by SNI; `any` is the default certificate. */
  readonly certs: HostIndex<TlsServerConfig> | null;
  /** TLS_PASSTHROUGH: routes by SNI. */
  readonly sni: HostIndex<StreamRoute> | null;
  /** TCP / TLS_TERMINATE: the route for every connection. */
  readonly tcp: StreamRoute | null;
  /** Any server on the port asks for client certificates. */
  readonly requestClientCert: boolean;
}

/** One socket to open: a selected NIC address x a Gateway port. */
export interface GatewayListener {
  /** "address:port" */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly mode: GatewayPortMode;
}

export interface GatewayTable {
  /** Strictly increasing per process; 0 = nothing compiled yet. */
  readonly version: number;
  readonly compiledAt: number;
  /** Selected NIC addresses, sorted. */
  readonly addresses: readonly string[];
  /** Sorted by port. */
  readonly ports: readonly GatewayPort[];
  /** By port number (as a string key). */
  readonly byPort: Readonly<Record<string, GatewayPort>>;
  /** addresses x ports, sorted by key. */
  readonly listeners: readonly GatewayListener[];
  /** Every route id on every port (for metrics), sorted. */
  readonly routeIds: readonly string[];
}

/** Read side of the gateway publisher. */
export interface GatewayTableSource {
  current(): GatewayTable;
  subscribe(listener: (table: GatewayTable) => void): () => void;
}
