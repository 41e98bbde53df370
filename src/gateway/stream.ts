// Whole-connection routes: a TCP port's tcp route, a TLS passthrough port's route by SNI (the
// ClientHello is read, not terminated), and a TLS_TERMINATE port's tcp route. The route picks a
// weighted destination once; the agent's splice (Proxy.spliceRouted) does the rest: load
// balancing, failover, the tunnel, the ClientHello replayed to the chosen endpoint.

import type { SocketHandler } from "bun";
import { lookupHost, type GatewayPort, type StreamRoute } from "../control/index.ts";
import type { ByteStream, Proxy, StreamSink } from "../hotpath/index.ts";
import { MAX_CLIENT_HELLO_BYTES } from "./constants.ts";
import { routeMetrics, type GatewayContext } from "./context.ts";
import { pickDestination } from "./route.ts";
import { readClientHelloSni, SNI_INVALID, SNI_MORE } from "./sni.ts";

export interface StreamListenerState {
  readonly ctx: GatewayContext;
  readonly proxy: Proxy;
  readonly port: number;
  readonly passthrough: boolean;
}

export class StreamConn {
  sink: StreamSink | null = null;
  hello: Uint8Array | null = null;
  helloLen = 0;
  deadline = 0;
  closed = false;
  constructor(
    readonly ls: StreamListenerState,
    readonly client: ByteStream,
    readonly clientIp: string,
  ) {}

  expire(_now: number): void {
    // No complete ClientHello in time.
    this.deadline = 0;
    this.ls.ctx.m.tlsHandshakeFailures.value++;
    this.client.terminate();
  }
}

/** Hand a client to the route's destination; false when there is nowhere to send it. */
export function spliceToRoute(ctx: GatewayContext, proxy: Proxy, route: StreamRoute | null, client: ByteStream, clientIp: string, early: readonly Uint8Array[]): StreamSink | null {
  if (route === null) {
    ctx.m.noRoute.value++;
    return null;
  }
  const dest = pickDestination(route, ctx.random);
  const sp = dest === null || dest.key === "" ? undefined : ctx.routes.current().byKey[dest.key];
  if (sp === undefined || sp.endpoints.length === 0) {
    ctx.m.unavailable.value++;
    return null;
  }
  routeMetrics(ctx, route.id).connections.value++;
  return proxy.spliceRouted(sp, clientIp, client, early);
}

function portOf(ctx: GatewayContext, port: number): GatewayPort | undefined {
  return ctx.gateway.current().byPort[String(port)];
}

function route(c: StreamConn, early: readonly Uint8Array[], sni: string): void {
  const { ctx, proxy, port } = c.ls;
  const p = portOf(ctx, port);
  let r: StreamRoute | null = null;
  if (p !== undefined) r = c.ls.passthrough ? (p.sni === null ? null : lookupHost(p.sni, sni)) : p.tcp;
  const sink = spliceToRoute(ctx, proxy, r, c.client, c.clientIp, early);
  if (sink === null) {
    c.client.terminate();
    return;
  }
  c.sink = sink;
}

export const streamClientHandler: SocketHandler<StreamConn, "uint8array"> = {
  binaryType: "uint8array",
  open(s) {
    const ls = s.data as unknown as StreamListenerState;
    const ctx = ls.ctx;
    ctx.m.accepted.value++;
    const c = new StreamConn(ls, s as unknown as ByteStream, s.remoteAddress);
    s.data = c;
    if (!ctx.accepting) {
      c.closed = true;
      s.terminate();
      return;
    }
    s.setNoDelay(true);
    if (!ls.passthrough) return route(c, [], "");
    c.deadline = ctx.clock.now() + ctx.timeouts.tlsHandshakeMs;
    ctx.live.add(c);
  },
  data(s, buf) {
    const c = s.data;
    if (c.sink !== null) return c.sink.data(buf);
    if (c.closed) return;
    // Passthrough: gather the ClientHello record.
    let hello: Uint8Array;
    if (c.helloLen === 0) hello = buf;
    else {
      const grown = new Uint8Array(c.helloLen + buf.length);
      grown.set(c.hello!.subarray(0, c.helloLen));
      grown.set(buf, c.helloLen);
      hello = grown;
    }
    const len = c.helloLen + (c.helloLen === 0 ? buf.length : buf.length);
    const r = readClientHelloSni(hello, len);
    if (r.status === SNI_MORE && len < MAX_CLIENT_HELLO_BYTES + 5) {
      c.hello = hello;
      c.helloLen = len;
      return;
    }
    c.ls.ctx.live.delete(c);
    c.deadline = 0;
    if (r.status === SNI_INVALID || r.status === SNI_MORE) {
      c.ls.ctx.m.tlsHandshakeFailures.value++;
      c.closed = true;
      s.terminate();
      return;
    }
    c.hello = null;
    route(c, [hello], (r as { name: string }).name);
  },
  drain(s) {
    s.data.sink?.drain();
  },
  end(s) {
    const c = s.data;
    if (c.sink !== null) c.sink.end();
    else s.end();
  },
  close(s, err) {
    const c = s.data;
    c.closed = true;
    c.ls.ctx.live.delete(c);
    c.sink?.close(err);
  },
  error() {},
};
