// The gateway's sockets follow the GatewayTable: one listener per selected NIC address and
// Gateway port. A listener whose key, mode and TLS parameters persist across versions stays
// open (its connections read the current table per request); one that leaves stops accepting
// while its connections run on. A bind that fails (the address is not on the NIC yet, the port
// is taken) is logged once and retried.

import type { TCPSocketListener } from "bun";
import type { TLSSocket } from "node:tls";
import type { GatewayListener, GatewayPort, GatewayTable, TlsServerConfig } from "../control/index.ts";
import type { Proxy, StreamSink } from "../hotpath/index.ts";
import type { GatewayContext } from "./context.ts";
import { acceptHttp, clientEnded, httpClientHandler, type HttpListenerState } from "./http/accept.ts";
import { clientClosed, flushDown, type HttpConn } from "./http/conn.ts";
import { onClientData } from "./http/request.ts";
import { spliceToRoute, streamClientHandler, type StreamListenerState } from "./stream.ts";
import { ContextCache, NodeSocketStream, openTlsListener, sniName, versionFloor, type TlsListener } from "./tls.ts";

/** How often a failed bind is tried again. */
export const BIND_RETRY_MS = 2000;

export interface GatewayListenerInfo {
  readonly address: string;
  /** The Gateway's port (what routes match on). */
  readonly port: number;
  /** The port actually bound (differs in dev mode when the Gateway's could not be bound). */
  readonly boundPort: number;
  readonly mode: GatewayListener["mode"];
  /** Set while the bind fails. */
  readonly error: string;
}

interface Open {
  readonly identity: string;
  readonly info: GatewayListenerInfo;
  close(): void;
  /** HTTPS/TLS: serve this default certificate from now on. */
  setDefault?(cfg: TlsServerConfig | null): void;
}

export interface ListenerSetOptions {
  ctx: GatewayContext;
  proxy: Proxy;
  /** Dev mode: a Gateway port that cannot be bound (below 1024 without root, taken) is served on a free port. */
  freePortFallback: boolean;
  onChange(): void;
}

/** Events of a node:tls client driving an HttpConn. */
class HttpClientSink implements StreamSink {
  constructor(readonly c: HttpConn) {}
  open(): void {}
  fail(): void {}
  data(chunk: Uint8Array): void {
    onClientData(this.c, chunk);
  }
  drain(): void {
    flushDown(this.c);
  }
  end(): void {
    clientEnded(this.c);
  }
  close(): void {
    clientClosed(this.c);
  }
}

/** What makes a listener's socket differ: a change means close and open again. */
function identityOf(l: GatewayListener, port: GatewayPort): string {
  if (l.mode === "HTTPS" || l.mode === "TLS_TERMINATE") return `${l.mode}|cert=${port.requestClientCert}|min=${versionFloor(port)}`;
  return l.mode;
}

export class ListenerSet {
  readonly #open = new Map<string, Open>();
  readonly #failed = new Map<string, { error: string; retryAt: number; info: GatewayListenerInfo }>();
  readonly #contexts = new ContextCache();
  #published: ReadonlyMap<string, GatewayListenerInfo> = new Map();
  #closed = false;

  constructor(readonly o: ListenerSetOptions) {}

  info(): ReadonlyMap<string, GatewayListenerInfo> {
    return this.#published;
  }

  reconcile(table: GatewayTable): void {
    if (this.#closed) return;
    let changed = false;
    const want = new Map<string, { l: GatewayListener; port: GatewayPort; identity: string }>();
    for (const l of table.listeners) {
      const port = table.byPort[String(l.port)]!;
      want.set(l.key, { l, port, identity: identityOf(l, port) });
    }
    for (const [key, open] of this.#open) {
      const w = want.get(key);
      if (w !== undefined && w.identity === open.identity) continue;
      open.close();
      this.#open.delete(key);
      changed = true;
    }
    for (const key of this.#failed.keys()) {
      if (!want.has(key)) {
        this.#failed.delete(key);
        changed = true;
      }
    }
    const now = this.o.ctx.clock.now();
    for (const [key, w] of want) {
      const open = this.#open.get(key);
      if (open !== undefined) {
        open.setDefault?.(w.port.certs?.any ?? null);
        continue;
      }
      const failed = this.#failed.get(key);
      if (failed !== undefined && now < failed.retryAt) continue;
      this.#openListener(key, w.l, w.port, w.identity);
      changed = true;
    }
    if (changed) this.#publish();
  }

  /** Retry binds that failed (the sweep calls this). */
  retry(table: GatewayTable): void {
    if (this.#failed.size === 0) return;
    const now = this.o.ctx.clock.now();
    for (const f of this.#failed.values()) if (now >= f.retryAt) return this.reconcile(table);
  }

  closeAll(): void {
    this.#closed = true;
    for (const open of this.#open.values()) open.close();
    this.#open.clear();
    this.#failed.clear();
    this.#publish();
  }

  #publish(): void {
    const next = new Map<string, GatewayListenerInfo>();
    for (const [key, open] of this.#open) next.set(key, open.info);
    for (const [key, f] of this.#failed) if (!next.has(key)) next.set(key, f.info);
    this.#published = new Map([...next].sort((a, b) => (a[0] < b[0] ? -1 : 1)));
    this.o.onChange();
  }

  #fail(key: string, l: GatewayListener, err: unknown): void {
    const ctx = this.o.ctx;
    const error = (err as { code?: string }).code ?? (err as Error).message ?? String(err);
    const before = this.#failed.get(key);
    if (before === undefined || before.error !== error) ctx.log.warn("gateway listener cannot bind; retrying", { listener: key, mode: l.mode, error });
    this.#failed.set(key, { error, retryAt: ctx.clock.now() + BIND_RETRY_MS, info: { address: l.address, port: l.port, boundPort: 0, mode: l.mode, error } });
  }

  #openListener(key: string, l: GatewayListener, port: GatewayPort, identity: string): void {
    const ctx = this.o.ctx;
    const tryPorts = this.o.freePortFallback ? [l.port, 0] : [l.port];
    if (l.mode === "HTTPS" || l.mode === "TLS_TERMINATE") {
      this.#openTls(key, l, port, identity, tryPorts, 0);
      return;
    }
    let lastErr: unknown;
    for (const p of tryPorts) {
      try {
        let socket: TCPSocketListener<unknown>;
        if (l.mode === "HTTP") {
          const data: HttpListenerState = { ctx, port: l.port };
          socket = Bun.listen({ hostname: l.address, port: p, exclusive: true, allowHalfOpen: true, data, socket: httpClientHandler as never }) as TCPSocketListener<unknown>;
        } else {
          const data: StreamListenerState = { ctx, proxy: this.o.proxy, port: l.port, passthrough: l.mode === "TLS_PASSTHROUGH" };
          socket = Bun.listen({ hostname: l.address, port: p, exclusive: true, allowHalfOpen: true, data, socket: streamClientHandler as never }) as TCPSocketListener<unknown>;
        }
        this.#failed.delete(key);
        const info: GatewayListenerInfo = { address: l.address, port: l.port, boundPort: socket.port, mode: l.mode, error: "" };
        this.#open.set(key, { identity, info, close: () => socket.stop(false) });
        ctx.log.info("gateway listening", { listener: key, mode: l.mode, bound: `${l.address}:${socket.port}` });
        return;
      } catch (err) {
        lastErr = err;
      }
    }
    this.#fail(key, l, lastErr);
  }

  #openTls(key: string, l: GatewayListener, port: GatewayPort, identity: string, tryPorts: number[], attempt: number): void {
    const ctx = this.o.ctx;
    const proxy = this.o.proxy;
    const terminateToTcp = l.mode === "TLS_TERMINATE";
    const listener: TlsListener = openTlsListener({
      ctx,
      contexts: this.#contexts,
      address: l.address,
      port: tryPorts[attempt]!,
      gatewayPort: l.port,
      requestCert: port.requestClientCert,
      minVersion: versionFloor(port),
      onSecure(socket: TLSSocket, _cfg: TlsServerConfig) {
        const stream = new NodeSocketStream(socket);
        const ip = socket.remoteAddress ?? "";
        if (terminateToTcp) {
          const p = ctx.gateway.current().byPort[String(l.port)];
          const sink = spliceToRoute(ctx, proxy, p?.tcp ?? null, stream, ip, []);
          if (sink === null) return socket.destroy();
          stream.sink = sink;
          return;
        }
        const c = acceptHttp(ctx, l.port, stream, ip, "https");
        if (c === null) return socket.destroy();
        c.clientKeepsRefs = true;
        c.sniHost = sniName((socket as unknown as { servername?: unknown }).servername);
        stream.sink = new HttpClientSink(c);
      },
    });
    // Registered at once (the bind completes asynchronously); dropped again if it fails.
    const info: GatewayListenerInfo = { address: l.address, port: l.port, boundPort: 0, mode: l.mode, error: "" };
    const open: Open = { identity, info, close: () => listener.close(), setDefault: (cfg) => listener.setDefault(cfg) };
    this.#open.set(key, open);
    listener.listening.then(
      (bound) => {
        if (this.#open.get(key) !== open) return listener.close();
        this.#failed.delete(key);
        const withPort: Open = { ...open, info: { ...info, boundPort: bound } };
        this.#open.set(key, withPort);
        ctx.log.info("gateway listening", { listener: key, mode: l.mode, bound: `${l.address}:${bound}` });
        this.#publish();
      },
      (err) => {
        if (this.#open.get(key) !== open) return;
        this.#open.delete(key);
        if (attempt + 1 < tryPorts.length) return this.#openTls(key, l, port, identity, tryPorts, attempt + 1);
        this.#fail(key, l, err);
        this.#publish();
      },
    );
  }
}

/**
 * Why the gateway is not ready to serve its table: each listener the table wants that is not
 * bound, with the bind error (or "binding" while a TLS bind is in flight). Empty when every
 * wanted listener accepts connections. /readyz answers 503 with these.
 */
export function unboundListeners(table: GatewayTable, listeners: ReadonlyMap<string, GatewayListenerInfo>): string[] {
  const out: string[] = [];
  for (const l of table.listeners) {
    const info = listeners.get(l.key);
    if (info === undefined) out.push(`listener ${l.key} (${l.mode}): not open`);
    else if (info.error !== "") out.push(`listener ${l.key} (${l.mode}): cannot bind: ${info.error}; retrying every ${BIND_RETRY_MS / 1000} s`);
    else if (info.boundPort === 0) out.push(`listener ${l.key} (${l.mode}): binding`);
  }
  return out;
}
