// Accepting a client and getting it an upstream: caps, endpoint choice, the HTTP head read for
// header hashing, asynchronous dials with failover and backoff. No dial ever blocks another
// connection: Bun.connect is fire-and-forget with handlers, and every wait (dial timeout, backoff,
// head timeout) is a deadline checked by one coarse sweep instead of a timer per connection.

import type { Socket } from "bun";
import type { Endpoint } from "../../control/index.ts";
import { BACKOFF_MS, HTTP_HEAD_MAX_BYTES, HTTP_HEAD_TIMEOUT_MS, MAX_DIALS_PER_ROUND } from "../constants.ts";
import { headEndAfterAppend, headerValue } from "../lb/index.ts";
import {
  acquireConn,
  Conn,
  PHASE_BACKOFF,
  PHASE_CLOSED,
  PHASE_DIALING,
  PHASE_HEAD,
  type TcpContext,
  type TcpListenerState,
} from "./conn.ts";
import type { ByteStream, StreamSink } from "../types.ts";
import { Dial, Inbound, upstreamHandler } from "./splice.ts";

/** Listener `open`: the socket's data is still the listener's TcpListenerState. */
export function accept(s: Socket<Conn>): void {
  const ls = s.data as unknown as TcpListenerState;
  const ctx = ls.ctx;
  ctx.m.accepted.value++;
  ls.pm.connections.value++;
  const perPortFull = ctx.maxConnectionsPerPort > 0 && ls.active >= ctx.maxConnectionsPerPort;
  if (!ctx.accepting || ctx.active >= ctx.maxConnections || perPortFull) {
    ctx.m.refusedLimit.value++;
    ls.pm.limit.value++;
    if (ctx.accepting) ctx.dlog.connectionLimit(ls.key, perPortFull, perPortFull ? ctx.maxConnectionsPerPort : ctx.maxConnections);
    s.data = refusedConn(ctx);
    s.terminate();
    return;
  }
  const c = acquireConn(ctx);
  c.ls = ls;
  c.client = s as unknown as ByteStream;
  c.clientIp = s.remoteAddress;
  s.data = c;
  ctx.active++;
  ls.active++;
  ctx.live.add(c);
  s.setNoDelay(true);
  // The table is read once: this connection keeps the ServicePort it started with.
  const sp = ctx.table.current().byKey[ls.key];
  c.sp = sp ?? null;
  c.phase = PHASE_DIALING;
  if (sp !== undefined && sp.policy.kind === "CONSISTENT_HASH_HEADER") {
    c.phase = PHASE_HEAD;
    c.deadline = ctx.clock.now() + HTTP_HEAD_TIMEOUT_MS;
    ctx.waiting.add(c);
    return;
  }
  s.pause();
  nextDial(c);
}

const refused = new WeakMap<TcpContext, Conn>();
/** A closed Conn every refused socket points at, so its close handler finds nothing to do. */
function refusedConn(ctx: TcpContext): Conn {
  let c = refused.get(ctx);
  if (c === undefined) refused.set(ctx, (c = new Conn(ctx)));
  return c;
}

/** More head bytes arrived (or FIN, or the head timed out): dial once the head is complete. */
export function onHeadBytes(c: Conn): void {
  // Only the new chunk is searched and the chunks are joined once at the end (and every
  // HEAD_CHUNKS_BEFORE_JOIN chunks): a head sent a byte per packet costs linear time.
  const end = headEndAfterAppend(c.early, c.earlyBytes);
  if (end < 0 && c.earlyBytes < HTTP_HEAD_MAX_BYTES && !c.clientFin) {
    if (c.early.length > HEAD_CHUNKS_BEFORE_JOIN) concat(c);
    return;
  }
  finishHead(c, c.early.length === 1 ? c.early[0]! : concat(c), end);
}

/** Tiny chunks cost ~100 bytes of heap each: a head dribbled a byte at a time is joined now and
 * then (each join copies at most HTTP_HEAD_MAX_BYTES), so it cannot hold 32k buffers. */
const HEAD_CHUNKS_BEFORE_JOIN = 64;

export function finishHead(c: Conn, buf: Uint8Array | null, end: number): void {
  c.ctx.waiting.delete(c);
  c.client?.pause();
  const sp = c.sp;
  if (buf !== null && end >= 0 && sp !== null && sp.policy.kind === "CONSISTENT_HASH_HEADER") {
    c.hashKey = headerValue(buf, end, sp.policy.header);
  }
  nextDial(c);
}

function concat(c: Conn): Uint8Array {
  const out = new Uint8Array(c.earlyBytes);
  let off = 0;
  for (const chunk of c.early) {
    out.set(chunk, off);
    off += chunk.length;
  }
  c.early.length = 0;
  c.early.push(out);
  return out;
}

/** Dial the next endpoint of this round, or back off, or give up. */
export function nextDial(c: Conn): void {
  const ctx = c.ctx;
  const sp = c.sp;
  if (c.client === null) return;
  if (c.target !== null) {
    // A chosen target (inbound from the tunnel, SOCKS5): one attempt; whoever chose it fails over.
    if (c.tried.length === 0) {
      c.tried.push(0);
      return startDial(c, c.target);
    }
    ctx.m.refusedNoEndpoint.value++;
    reportResult(c, false);
    c.client.terminate();
    return;
  }
  const idx = sp === null || c.tried.length >= MAX_DIALS_PER_ROUND ? -1 : ctx.balancer.pick(sp, c.clientIp, c.hashKey, c.tried);
  if (idx >= 0) {
    c.tried.push(idx);
    return startDial(c, sp!.endpoints[idx]!);
  }
  if (c.round >= BACKOFF_MS.length) {
    ctx.m.refusedNoEndpoint.value++;
    if (c.ls !== null) c.ls.pm.noEndpoint.value++;
    ctx.dlog.noEndpoint(serviceOf(c), sp === null ? "service port gone" : sp.endpoints.length === 0 ? "no ready endpoints" : "every endpoint failed");
    c.client.terminate();
    return;
  }
  c.phase = PHASE_BACKOFF;
  c.deadline = ctx.clock.now() + BACKOFF_MS[c.round]!;
  c.round++;
  ctx.waiting.add(c);
}

function startDial(c: Conn, ep: Endpoint): void {
  const ctx = c.ctx;
  const d = new Dial(c);
  d.ep = ep;
  d.startedMs = performance.now();
  c.dial = d;
  c.phase = PHASE_DIALING;
  c.deadline = ctx.clock.now() + ctx.dialTimeoutMs;
  ctx.waiting.add(c);
  try {
    if (ctx.remote !== undefined && ep.node !== "" && ep.node !== ctx.nodeName) {
      d.remote = true;
      ctx.remote.dial(ep.node, ep.ip, ep.port, "TCP", d);
    } else {
      // The promise is ignored: connectError reports failure, and with it Bun does not raise
      // an unhandled rejection.
      void Bun.connect<Dial>({ hostname: ep.ip, port: ep.port, allowHalfOpen: true, data: d, socket: upstreamHandler as never });
    }
  } catch {
    dialFailed(d);
  }
}

/** This attempt failed (refused, unreachable, remote FAILED): try the next endpoint now. */
export function dialFailed(d: Dial, error?: Error): void {
  const c = d.conn;
  if (c === null || c.dial !== d) return;
  c.lastError = error ?? null;
  d.conn = null;
  c.dial = null;
  if (d.resumed) c.client?.pause(); // read for early data; the next attempt decides anew
  c.ctx.waiting.delete(c);
  c.ctx.m.dialFailures.value++;
  if (c.ls !== null) c.ls.pm.dialErrors.value++;
  if (d.ep !== null) c.ctx.dlog.dialFailed(serviceOf(c), d.ep, d.remote, c.lastError);
  nextDial(c);
}

/** What the data-path warnings name as the service: its port key, or the kind of chosen target. */
function serviceOf(c: Conn): string {
  return c.sp?.key ?? c.ls?.key ?? (c.target !== null && c.target.node !== "" ? "(socks5)" : "(tunnel inbound)");
}

/** Forget the in-flight dial; if it completes later, its socket is closed on open. */
export function abandonDial(c: Conn): void {
  const d = c.dial;
  if (d !== null) {
    d.conn = null;
    c.dial = null;
    if (d.resumed) c.client?.pause();
  }
  c.ctx.waiting.delete(c);
}

/** The coarse timer: expire dials, end backoffs and head reads whose deadline passed. */
export function sweepWaiting(ctx: TcpContext): void {
  if (ctx.waiting.size === 0) return;
  const now = ctx.clock.now();
  for (const c of ctx.waiting) {
    if (now < c.deadline) continue;
    ctx.waiting.delete(c);
    if (c.phase === PHASE_DIALING) {
      ctx.m.dialTimeouts.value++;
      c.lastError = DIAL_TIMED_OUT;
      if (c.ls !== null) c.ls.pm.dialTimeouts.value++;
      const d = c.dial;
      if (d !== null && d.ep !== null) ctx.dlog.dialFailed(serviceOf(c), d.ep, d.remote, DIAL_TIMED_OUT);
      abandonDial(c);
      nextDial(c);
    } else if (c.phase === PHASE_BACKOFF) {
      // A new round sees the table as it is now: endpoints may have come back.
      const sp = c.ls === null ? undefined : ctx.table.current().byKey[c.ls.key];
      if (sp !== undefined) c.sp = sp;
      c.tried.length = 0;
      nextDial(c);
    } else if (c.phase === PHASE_HEAD) {
      finishHead(c, null, -1);
    } else if (c.phase === PHASE_CLOSED) {
      // released meanwhile; nothing to do
    }
  }
}

/** The error a dial that ran out of time reports (one object: no allocation per timeout). */
export const DIAL_TIMED_OUT: Error = Object.assign(new Error("connect timed out"), { code: "ETIMEDOUT" });

/**
 * A client stream whose target is already chosen: a stream that arrived from another agent's
 * tunnel for local endpoint ip:port (node ""), or a SOCKS5 client for ip:port on `node` (this
 * node: dialed directly; another: through the tunnel). Dial it once and splice. Returns the sink
 * the caller drives with the stream's events, or null when the agent is at its connection cap.
 */
export function acceptStream(
  ctx: TcpContext,
  ip: string,
  port: number,
  stream: ByteStream,
  result: (ok: boolean, error: Error | null) => void,
  node = "",
): StreamSink | null {
  const c = admitStream(ctx, stream);
  if (c === null) return null;
  c.target = { ip, port, node, ready: true, hostname: "", zone: "" };
  c.onResult = result;
  return startDialing(ctx, c, stream);
}

/**
 * A connection for a client stream that arrived other than through a service listener, in its
 * dialing phase, or null (counted) when the agent is at its connection cap. The caller sets the
 * target (or the service port) and calls startDialing.
 */
export function admitStream(ctx: TcpContext, stream: ByteStream): Conn | null {
  ctx.m.accepted.value++;
  if (!ctx.accepting || ctx.active >= ctx.maxConnections) {
    ctx.m.refusedLimit.value++;
    return null;
  }
  const c = acquireConn(ctx);
  c.client = stream;
  c.phase = PHASE_DIALING;
  return c;
}

/** Count c as live, hold the client's bytes until the splice, dial; the sink drives the stream. */
export function startDialing(ctx: TcpContext, c: Conn, stream: ByteStream): StreamSink {
  ctx.active++;
  ctx.live.add(c);
  stream.pause();
  const sink = new Inbound(c);
  nextDial(c);
  return sink;
}

/** Tell a connection with a chosen target how its dial went (at most once). */
export function reportResult(c: Conn, ok: boolean): void {
  const cb = c.onResult;
  if (cb === null) return;
  c.onResult = null;
  try {
    cb(ok, ok ? null : c.lastError);
  } catch (err) {
    c.ctx.log.error("inbound result callback failed", { err });
  }
}
