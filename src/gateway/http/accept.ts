// Accepting HTTP client connections: the shared Bun socket handler (plain HTTP) and the entry
// used by TLS-terminated connections (a node:tls socket behind an adapter). Handlers are
// module-level objects; per-connection state is the HttpConn in socket.data.

import type { SocketHandler } from "bun";
import type { ByteStream } from "../../hotpath/index.ts";
import type { GatewayContext } from "../context.ts";
import { abortConn, clientClosed, closeWhenFlushed, flushDown, flushUp, HttpConn, P_CLOSED, P_CONNECT, P_EXCHANGE, P_HEAD, P_RAW, takeConn } from "./conn.ts";
import { onClientData } from "./request.ts";

/** Listener data of a plain HTTP listener. */
export interface HttpListenerState {
  readonly ctx: GatewayContext;
  readonly port: number;
}

/** A new client connection; null when the gateway is at its connection cap (caller closes). */
export function acceptHttp(ctx: GatewayContext, port: number, client: ByteStream, clientIp: string, proto: string): HttpConn | null {
  ctx.m.accepted.value++;
  if (!ctx.accepting || ctx.active >= ctx.maxConnections) {
    ctx.m.refused.value++;
    return null;
  }
  const c = takeConn(ctx);
  c.client = client;
  c.clientIp = clientIp;
  c.proto = proto;
  c.listenPort = port;
  c.portKey = String(port);
  c.deadline = ctx.clock.now() + ctx.timeouts.idleMs;
  ctx.active++;
  ctx.live.add(c);
  return c;
}

/** The client sent FIN. */
export function clientEnded(c: HttpConn): void {
  switch (c.phase) {
    case P_HEAD:
      // Done asking (or gave up halfway through a head): close our side too.
      closeWhenFlushed(c);
      return;
    case P_CONNECT:
    case P_EXCHANGE:
      // A cut-off body leaves the upstream out of step: reset both.
      if (!c.reqDone) return abortConn(c);
      c.closeAfter = true; // answer, then close
      return;
    case P_RAW:
      c.clientFin = true;
      if (c.upQ.empty) c.up?.stream?.shutdown();
      else flushUp(c);
      return;
    default:
      return;
  }
}

const CLOSED_REFUSED = { phase: P_CLOSED } as unknown as HttpConn;

export const httpClientHandler: SocketHandler<HttpConn, "uint8array"> = {
  binaryType: "uint8array",
  open(s) {
    const ls = s.data as unknown as HttpListenerState;
    const c = acceptHttp(ls.ctx, ls.port, s as unknown as ByteStream, s.remoteAddress, "http");
    if (c === null) {
      s.data = CLOSED_REFUSED;
      s.terminate();
      return;
    }
    // No setNoDelay: Bun sets TCP_NODELAY on every accepted socket (a second setsockopt per
    // connection was measured in strace, 2026-12-05).
    s.data = c;
  },
  data(s, buf) {
    onClientData(s.data, buf);
  },
  drain(s) {
    flushDown(s.data);
  },
  end(s) {
    const c = s.data;
    if (c !== CLOSED_REFUSED) clientEnded(c);
  },
  close(s) {
    const c = s.data;
    if (c !== CLOSED_REFUSED && c.phase !== undefined) clientClosed(c);
  },
  error() {},
};

