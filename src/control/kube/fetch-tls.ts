// HTTP to the Kubernetes API with the connection's TLS settings actually applied.
//
// Why this exists: @kubernetes/client-node builds an undici/https Agent carrying the CA, client
// certificate and skip-verify flag and hands it to fetch as `dispatcher`. Under Bun, `undici` is
// Bun's own shim over its native fetch, which ignores the dispatcher's connect options, so none of
// those settings reach the socket: a private CA is not trusted, no client certificate is sent.
// Bun's fetch has its own `tls` option ({ ca, cert, key, rejectUnauthorized, serverName }); we
// pass the settings there, through one Bun.FetchSession per distinct TLS material so list pages
// and watch reconnects reuse a pooled connection. Trust stays per connection (no process-wide
// NODE_EXTRA_CA_CERTS).
//
// Credentials: Cloud and Edge modes need only a server, PEM files and a token file, read here
// directly. A kubeconfig (Manual mode) can use any auth plugin (exec, OIDC, ...), so for that
// case we load @kubernetes/client-node's KubeConfig and ask it for headers and TLS material on
// every request (it caches and refreshes tokens). It is imported lazily: loading the client costs
// ~280 ms and ~50 MiB of RSS, which Cloud/Edge agents should not pay.

import { readFileSync } from "node:fs";
import type { KubeConnection } from "./modes.ts";
import { KubeSourceError } from "./errors.ts";

export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
  rejectUnauthorized: boolean;
  serverName?: string;
}

interface Credentials {
  headers: Record<string, string>;
  tls?: TlsMaterial;
}

export interface KubeFetch {
  readonly server: string;
  /** Request `pathAndQuery` (starting with "/") on the API server (GET unless told). */
  request(pathAndQuery: string, init?: KubeRequestInit): Promise<Response>;
  close(): void;
}

export interface KubeRequestInit {
  signal?: AbortSignal;
  method?: string;
  body?: string | Uint8Array | null;
  headers?: Record<string, string>;
}

/** Re-read a rotating service-account token at most this often (client-go does the same). */
const TOKEN_REFRESH_MS = 60_000;

type FetchFn = (url: string, init: RequestInit & { tls?: unknown; session?: unknown }) => Promise<Response>;

export async function createKubeFetch(conn: KubeConnection, deps: { fetch?: FetchFn; now?: () => number } = {}): Promise<KubeFetch> {
  const now = deps.now ?? Date.now;
  const provider = conn.kubeConfigPath ? await kubeConfigCredentials(conn) : staticCredentials(conn, now);
  const server = provider.server.replace(/\/+$/, "");
  const sessions = new Map<string, { fetch: FetchFn; close(): void }>();

  const sessionFor = (tls: TlsMaterial | undefined) => {
    const id = tls ? JSON.stringify([tls.ca, tls.cert, tls.key, tls.rejectUnauthorized, tls.serverName]) : "";
    let s = sessions.get(id);
    if (!s) {
      const bunTls = tls ? { ca: tls.ca, cert: tls.cert, key: tls.key, rejectUnauthorized: tls.rejectUnauthorized, serverName: tls.serverName } : undefined;
      if (deps.fetch) {
        const f = deps.fetch;
        s = { fetch: (url, init) => f(url, { ...init, tls: bunTls }), close() {} };
      } else if (typeof Bun.FetchSession === "function") {
        const session = new Bun.FetchSession({ tls: bunTls });
        s = { fetch: session.fetch as FetchFn, close: () => session.close() };
      } else {
        s = { fetch: (url, init) => fetch(url, { ...init, tls: bunTls } as RequestInit), close() {} };
      }
      // Old material is dropped: a rotated certificate must not keep the old pool alive.
      for (const old of sessions.values()) old.close();
      sessions.clear();
      sessions.set(id, s);
    }
    return s;
  };

  return {
    server,
    async request(pathAndQuery, init = {}) {
      const creds = await provider.credentials();
      const session = sessionFor(creds.tls);
      const headers = { accept: "application/json", "user-agent": "edgemesh-bun", ...init.headers, ...creds.headers };
      return session.fetch(server + pathAndQuery, { method: init.method ?? "GET", headers, body: init.body, signal: init.signal });
    },
    close() {
      for (const s of sessions.values()) s.close();
      sessions.clear();
    },
  };
}

interface CredentialProvider {
  server: string;
  credentials(): Promise<Credentials>;
}

function readPem(file: string | undefined, what: string): string | undefined {
  if (!file) return undefined;
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new KubeSourceError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
}

function staticCredentials(conn: KubeConnection, now: () => number): CredentialProvider {
  if (!conn.server) throw new KubeSourceError(`no API server address for ${conn.mode} mode (${conn.reason})`);
  const t = conn.tls ?? {};
  const https = conn.server.startsWith("https:");
  const tls: TlsMaterial | undefined = https
    ? {
        ca: t.ca ?? readPem(t.caFile, "CA file"),
        cert: t.cert ?? readPem(t.certFile, "client certificate"),
        key: t.key ?? readPem(t.keyFile, "client key"),
        rejectUnauthorized: !t.insecureSkipVerify,
        serverName: t.serverName,
      }
    : undefined;
  let token: string | undefined;
  let tokenReadAt = -Infinity;
  return {
    server: conn.server,
    async credentials() {
      const headers: Record<string, string> = {};
      if (conn.tokenFile) {
        if (now() - tokenReadAt >= TOKEN_REFRESH_MS) {
          tokenReadAt = now();
          try {
            token = readFileSync(conn.tokenFile, "utf8").trim();
          } catch {
            token = undefined; // no token mounted: the server decides (MetaServer without auth)
          }
        }
        if (token) headers.authorization = `Bearer ${token}`;
      }
      return { headers, tls };
    },
  };
}

async function kubeConfigCredentials(conn: KubeConnection): Promise<CredentialProvider> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  try {
    kc.loadFromFile(conn.kubeConfigPath!);
  } catch (err) {
    throw new KubeSourceError(`cannot load kubeconfig ${conn.kubeConfigPath}: ${(err as Error).message}`);
  }
  const cluster = kc.getCurrentCluster() as { server: string; skipTLSVerify: boolean } | null;
  if (!cluster) throw new KubeSourceError(`kubeconfig ${conn.kubeConfigPath} has no current cluster`);
  // kubeAPIConfig.master overrides the kubeconfig's server, as in client-go BuildConfigFromFlags.
  if (conn.server) cluster.server = conn.server;
  // The client refuses plain http unless skipTLSVerify is set; there is no TLS to verify then.
  if (cluster.server.startsWith("http:")) cluster.skipTLSVerify = true;
  const server = cluster.server;
  return {
    server,
    async credentials() {
      const opts: Record<string, any> = { headers: {} };
      await kc.applyToHTTPSOptions(opts as never);
      const headers: Record<string, string> = {};
      for (const [k, v] of Object.entries(opts.headers ?? {})) headers[k.toLowerCase()] = String(v);
      if (opts.auth) headers.authorization = `Basic ${Buffer.from(opts.auth).toString("base64")}`;
      const pem = (v: unknown) => (v == null ? undefined : Buffer.isBuffer(v) ? v.toString("utf8") : String(v));
      const tls: TlsMaterial | undefined = server.startsWith("https:")
        ? { ca: pem(opts.ca), cert: pem(opts.cert), key: pem(opts.key), rejectUnauthorized: opts.rejectUnauthorized !== false, serverName: opts.servername }
        : undefined;
      return { headers, tls };
    },
  };
}
