// TLS termination for HTTPS and TLS ports, on node:tls: its SNICallback lets every handshake take
// the certificate of the current GatewayTable (a rotated Secret is served to the next handshake,
// no listener restart), and a per-context CA checks client certificates. Bun.listen's TLS takes
// one certificate per listener and cannot swap it.
// What node:tls does not apply per SNI context (protocol version bounds; OpenSSL keeps the first
// context's) is checked after the handshake: the listener allows the loosest bounds of its
// certificates and each connection is held to its own certificate's.

import tls, { type SecureContext, type TLSSocket } from "node:tls";
import { lookupHost, normalizeHost, type GatewayPort, type TlsServerConfig } from "../control/index.ts";
import type { ByteStream, StreamSink } from "../hotpath/index.ts";
import type { GatewayContext } from "./context.ts";

/** SecureContexts by certificate revision: made once per certificate, reused by every handshake. */
export class ContextCache {
  readonly #byRevision = new Map<string, SecureContext>();

  get(cfg: TlsServerConfig): SecureContext {
    let sc = this.#byRevision.get(cfg.revision);
    if (sc === undefined) {
      sc = tls.createSecureContext(contextOptions(cfg));
      // Bounded by the certificates in use; a rotation leaves old entries behind, trimmed here.
      if (this.#byRevision.size > 256) this.#byRevision.clear();
      this.#byRevision.set(cfg.revision, sc);
    }
    return sc;
  }
}

export function contextOptions(cfg: TlsServerConfig): tls.SecureContextOptions {
  const o: tls.SecureContextOptions = { cert: cfg.cert, key: cfg.key };
  if (cfg.ca !== null) o.ca = cfg.ca;
  if (cfg.ciphers !== "") o.ciphers = cfg.ciphers;
  if (cfg.minVersion !== "") o.minVersion = cfg.minVersion as tls.SecureVersion;
  if (cfg.maxVersion !== "") o.maxVersion = cfg.maxVersion as tls.SecureVersion;
  return o;
}

const VERSION_ORDER: Record<string, number> = { TLSv1: 1, "TLSv1.1": 2, "TLSv1.2": 3, "TLSv1.3": 4 };

/** The listener-wide version floor: the lowest any certificate on the port allows. */
export function versionFloor(port: GatewayPort): string {
  let floor = "TLSv1.2"; // Node's and Istio's default
  const certs = port.certs;
  if (certs === null) return floor;
  const all = [...Object.values(certs.exact), ...certs.wildcards.map((w) => w.value), ...(certs.any ? [certs.any] : [])];
  for (const c of all) if (c.minVersion !== "" && VERSION_ORDER[c.minVersion]! < VERSION_ORDER[floor]!) floor = c.minVersion;
  return floor;
}

/** The certificate config for a connection's SNI on the port now. */
export function configFor(port: GatewayPort | undefined, servername: string): TlsServerConfig | null {
  if (port === undefined || port.certs === null) return null;
  return lookupHost(port.certs, normalizeHost(servername));
}

/**
 * The SNI name of a handshake or TLS socket, "" without one. A client that connects to an IP
 * address sends none, and then node:tls (Bun's too) gives `false`, not undefined: `?? ""` let
 * it through, normalizeHost threw in ALPNCallback, and every such client that offered ALPN
 * (curl https://IP/ does) got "no application protocol".
 */
export function sniName(servername: unknown): string {
  return typeof servername === "string" ? servername : "";
}

/** Does the connection meet its certificate's client-certificate and version rules? */
export function admitted(cfg: TlsServerConfig, socket: TLSSocket): "ok" | "client-cert" | "version" {
  if (cfg.clientCert === "require" && !socket.authorized) return "client-cert";
  if (cfg.clientCert === "optional" && !socket.authorized) {
    // No certificate at all is fine; a certificate that does not verify is not.
    const peer = socket.getPeerCertificate();
    if (peer !== null && typeof peer === "object" && Object.keys(peer).length > 0) return "client-cert";
  }
  const v = VERSION_ORDER[socket.getProtocol() ?? ""] ?? 0;
  if (cfg.minVersion !== "" && v < VERSION_ORDER[cfg.minVersion]!) return "version";
  if (cfg.maxVersion !== "" && v > VERSION_ORDER[cfg.maxVersion]!) return "version";
  return "ok";
}

export interface TlsListenerOptions {
  ctx: GatewayContext;
  contexts: ContextCache;
  address: string;
  port: number;
  /** The Gateway port (routing key); `port` may differ in dev mode. */
  gatewayPort: number;
  requestCert: boolean;
  minVersion: string;
  onSecure(socket: TLSSocket, cfg: TlsServerConfig): void;
}

export interface TlsListener {
  readonly server: tls.Server;
  /** Resolves with the bound port, rejects with the bind error. */
  readonly listening: Promise<number>;
  /** Serve this default certificate to clients without SNI (rotation). */
  setDefault(cfg: TlsServerConfig | null): void;
  close(): void;
}

export function openTlsListener(o: TlsListenerOptions): TlsListener {
  const { ctx, contexts } = o;
  const current = () => ctx.gateway.current().byPort[String(o.gatewayPort)];
  const initial = current()?.certs?.any ?? null;
  let defaultRevision = initial?.revision ?? "";
  const server = tls.createServer({
    allowHalfOpen: true,
    requestCert: o.requestCert,
    rejectUnauthorized: false,
    minVersion: o.minVersion as tls.SecureVersion,
    handshakeTimeout: ctx.timeouts.tlsHandshakeMs,
    ...(initial !== null ? contextOptions(initial) : {}),
    SNICallback(servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) {
      const cfg = configFor(current(), servername);
      if (cfg === null) return cb(null, undefined); // the default certificate
      try {
        cb(null, contexts.get(cfg));
      } catch (err) {
        cb(err as Error);
      }
    },
    ALPNCallback({ servername, protocols }: { servername: string | false; protocols: string[] }) {
      const cfg = configFor(current(), sniName(servername));
      if (cfg !== null && cfg.h2 && protocols.includes("h2")) return "h2";
      if (protocols.includes("http/1.1")) return "http/1.1";
      return undefined;
    },
  } as tls.TlsOptions);
  // A failed handshake (garbage, a timeout, no shared cipher) is counted and its socket closed:
  // node reports it but leaves the socket open.
  server.on("tlsClientError", (_err: Error, socket: TLSSocket) => {
    ctx.m.tlsHandshakeFailures.value++;
    socket?.destroy();
  });
  server.on("secureConnection", (socket: TLSSocket) => {
    const cfg = configFor(current(), sniName((socket as unknown as { servername?: unknown }).servername));
    if (cfg === null) {
      ctx.m.tlsHandshakeFailures.value++;
      socket.destroy();
      return;
    }
    const verdict = admitted(cfg, socket);
    if (verdict !== "ok") {
      if (verdict === "client-cert") ctx.m.tlsClientCertRefused.value++;
      else ctx.m.tlsHandshakeFailures.value++;
      socket.destroy();
      return;
    }
    o.onSecure(socket, cfg);
  });
  server.on("error", () => {});
  const listening = new Promise<number>((resolve, reject) => {
    server.once("error", reject);
    server.listen({ host: o.address, port: o.port, exclusive: true }, () => {
      server.off("error", reject);
      resolve((server.address() as { port: number }).port);
    });
  });
  return {
    server,
    listening,
    setDefault(cfg) {
      const rev = cfg?.revision ?? "";
      if (cfg === null || rev === defaultRevision) return;
      defaultRevision = rev;
      server.setSecureContext(contextOptions(cfg));
    },
    close() {
      server.close();
    },
  };
}

/**
 * A node:tls socket as the ByteStream the data plane writes to. node keeps a written buffer until
 * it is flushed, so writers must not hand it a buffer they reuse (HttpConn copies its scratch
 * for such clients). write() reports a full socket as 0 bytes until 'drain'.
 */
export class NodeSocketStream implements ByteStream {
  #blocked = false;
  sink: StreamSink | null = null;
  readonly keepsReferences = true;
  constructor(readonly socket: TLSSocket) {
    socket.setNoDelay(true);
    socket.on("data", (buf: Buffer) => this.sink?.data(buf));
    socket.on("drain", () => {
      this.#blocked = false;
      this.sink?.drain();
    });
    socket.on("end", () => this.sink?.end());
    socket.on("close", (hadError: boolean) => {
      const s = this.sink;
      this.sink = null;
      s?.close(hadError ? CLOSED_WITH_ERROR : undefined);
    });
    socket.on("error", () => {});
  }

  write(data: Uint8Array, offset = 0, length = data.length - offset): number {
    const s = this.socket;
    if (s.destroyed || !s.writable) return -1;
    if (this.#blocked) return 0;
    if (!s.write(offset === 0 && length === data.length ? data : data.subarray(offset, offset + length))) this.#blocked = true;
    return length;
  }
  shutdown(): void {
    if (!this.socket.destroyed) this.socket.end();
  }
  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }
  terminate(): void {
    const s = this.socket as TLSSocket & { resetAndDestroy?: () => void };
    if (typeof s.resetAndDestroy === "function") s.resetAndDestroy();
    else s.destroy();
  }
  pause(): void {
    this.socket.pause();
  }
  resume(): void {
    this.socket.resume();
  }
}

const CLOSED_WITH_ERROR = new Error("client connection closed with an error");
