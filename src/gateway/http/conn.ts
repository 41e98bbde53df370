// One client connection of an HTTP (or HTTPS) gateway port, and how bytes move through it.
// A connection carries requests one after another (keep-alive); each is routed on its own, gets
// an upstream from the pool of the chosen endpoint (or a new connection: local, or through the
// tunnel), and gives it back when the exchange ends cleanly. Bytes are forwarded as received;
// a short write keeps the range and pauses the sending side until the receiving side drains,
// as the agent's splice does. The request flow is in request.ts, the response flow in
// response.ts; this file holds the state, the two byte directions and the endings.

import type { Destination, HttpMatch, HttpRoute, ServicePort } from "../../control/index.ts";
import type { ByteStream } from "../../hotpath/index.ts";
import { MAX_QUEUED_BYTES } from "../constants.ts";
import type { GatewayContext, RouteMetrics } from "../context.ts";
import { U_READY, type Upstream, type UpstreamOwner } from "../upstream.ts";
import type { Canned } from "./canned.ts";
import { ChunkedScanner } from "./chunked.ts";
import { ByteQueue } from "./queue.ts";
import { RequestHead } from "./request-head.ts";
import { ResponseHead } from "./response-head.ts";
import { consumeClientBytes, expireConn, retryOrFail, sendRequestHead } from "./request.ts";
import { onUpstreamData, upstreamEnded } from "./response.ts";

export const P_HEAD = 0; // waiting for or reading a request head
export const P_CONNECT = 1; // routed; waiting for an upstream
export const P_EXCHANGE = 2; // upstream attached: request going up, response coming down
export const P_RAW = 3; // upgraded (WebSocket...) or h2: bytes both ways until either side ends
export const P_CLOSING = 4; // the last answer is written; the client is ended once it is flushed
export const P_CLOSED = 5;

export const REQ_NONE = 0;
export const REQ_LENGTH = 1;
export const REQ_CHUNKED = 2;
/** h2 prior knowledge: everything the client sends goes up as it is. */
export const REQ_RAW = 3;

export const R_HEAD = 0;
export const R_BODY = 1;
export const R_DONE = 2;

/** Why the client is paused (bits): the upstream cannot take more / too many pipelined bytes. */
const PAUSE_UPSTREAM = 1;
const PAUSE_PENDING = 2;

export class HttpConn implements UpstreamOwner {
  client: ByteStream | null = null;
  clientIp = "";
  /** "http" or "https" (X-Forwarded-Proto). */
  proto = "http";
  /** The client stream keeps written buffers by reference (node:tls): never hand it scratch. */
  clientKeepsRefs = false;
  /** TLS: the SNI name, the host of an h2 connection (which has no Host to route on). */
  sniHost = "";
  listenPort = 0;
  /** String(listenPort): the key of the gateway table's byPort. */
  portKey = "";
  phase = P_HEAD;
  /** Clock ms when the current wait ends; 0 = none. */
  deadline = 0;
  /** The deadline is the keep-alive idle timeout (no request bytes yet). */
  idle = true;

  // Request head assembly when it spans several reads.
  acc: Uint8Array | null = null;
  accLen = 0;
  scanFrom = 0;
  readonly head = new RequestHead();

  route: HttpRoute | null = null;
  readonly sel: { match: HttpMatch | null } = { match: null };
  dest: Destination | null = null;
  sp: ServicePort | null = null;
  readonly tried: number[] = [];
  attempts = 0;
  hashKey = "";
  reqMode = REQ_NONE;
  reqRemaining = 0;
  readonly reqChunked = new ChunkedScanner();
  reqDone = true;
  /** The whole request is still in memory (no body): it can be re-sent on a new connection. */
  replayable = false;
  started = 0;
  /** h2 prior knowledge: the head bytes are the preface, forwarded as they are. */
  h2 = false;
  rm: RouteMetrics | null = null;
  /** The last route's metrics and the last endpoint's pool key (looked up once per change). */
  rmRoute: HttpRoute | null = null;
  rmOfRoute: RouteMetrics | null = null;
  keyEp: object | null = null;
  keyLocal = false;
  keyOfEp = "";

  up: Upstream | null = null;
  readonly resp = new ResponseHead();
  respState = R_HEAD;
  respMode = 0;
  respRemaining = 0;
  readonly respChunked = new ChunkedScanner();
  respAcc: Uint8Array | null = null;
  respAccLen = 0;
  respScanFrom = 0;
  /** Some of the response reached the client: an error now can only reset the connection. */
  respStarted = false;

  /** Close the client once the current answer is flushed. */
  closeAfter = false;
  /** Byte streams (P_RAW): a side sent FIN; it is passed on once the queue toward the other side is flushed. */
  clientFin = false;
  upFin = false;
  /** A route was chosen and an upstream must be found once the bytes at hand are queued. */
  needConnect = false;
  readonly upQ = new ByteQueue();
  readonly downQ = new ByteQueue();
  readonly pendQ = new ByteQueue();
  pausedFor = 0;
  upPaused = false;
  draining = false;

  constructor(public ctx: GatewayContext) {}

  /** The match that chose the route (UpstreamHeadContext: the connection is its own). */
  get match(): HttpMatch | null {
    return this.sel.match;
  }

  /** Back to the state of a new connection (a released HttpConn is reused by the next accept). */
  reuse(ctx: GatewayContext): void {
    this.ctx = ctx;
    this.client = null;
    this.clientIp = "";
    this.proto = "http";
    this.clientKeepsRefs = false;
    this.sniHost = "";
    this.listenPort = 0;
    this.portKey = "";
    this.phase = P_HEAD;
    this.deadline = 0;
    this.idle = true;
    this.acc = null;
    this.accLen = 0;
    this.scanFrom = 0;
    this.route = null;
    this.sel.match = null;
    this.dest = null;
    this.sp = null;
    this.tried.length = 0;
    this.attempts = 0;
    this.hashKey = "";
    this.reqMode = REQ_NONE;
    this.reqRemaining = 0;
    this.reqChunked.reset();
    this.reqDone = true;
    this.replayable = false;
    this.started = 0;
    this.h2 = false;
    this.rm = null;
    this.rmRoute = null;
    this.rmOfRoute = null;
    this.keyEp = null;
    this.keyLocal = false;
    this.keyOfEp = "";
    this.up = null;
    this.respState = R_HEAD;
    this.respMode = 0;
    this.respRemaining = 0;
    this.respChunked.reset();
    this.respAcc = null;
    this.respAccLen = 0;
    this.respScanFrom = 0;
    this.respStarted = false;
    this.closeAfter = false;
    this.clientFin = false;
    this.upFin = false;
    this.needConnect = false;
    this.upQ.clear();
    this.downQ.clear();
    this.pendQ.clear();
    this.pausedFor = 0;
    this.upPaused = false;
    this.draining = false;
  }

  // ---- UpstreamOwner: events of the attached upstream ----
  upstreamOpen(u: Upstream): void {
    if (u !== this.up) return;
    this.ctx.m.upstreamConnects.value++;
    this.deadline = this.route !== null && this.route.timeoutMs > 0 ? this.started + this.route.timeoutMs : 0;
    this.phase = this.h2 ? P_RAW : P_EXCHANGE;
    sendRequestHead(this);
  }
  upstreamFailed(u: Upstream): void {
    if (u !== this.up) return;
    this.up = null;
    this.ctx.m.upstreamConnectFailures.value++;
    retryOrFail(this);
  }
  upstreamData(u: Upstream, chunk: Uint8Array): void {
    if (u === this.up) onUpstreamData(this, chunk, 0, chunk.length);
  }
  upstreamDrain(u: Upstream): void {
    if (u === this.up) flushUp(this);
  }
  upstreamEnd(u: Upstream): void {
    if (u === this.up) upstreamEnded(this, undefined);
  }
  upstreamClosed(u: Upstream, error: Error | undefined): void {
    if (u !== this.up) return;
    upstreamEnded(this, error);
    if (this.up === u) this.up = null;
    maybeRelease(this);
  }

  /** The sweep found the deadline passed. */
  expire(now: number): void {
    expireConn(this, now);
  }
}

// ---- client -> upstream ----

/** Forward buf[start, end) to the upstream, or queue it (not attached yet, or full). */
export function sendUp(c: HttpConn, buf: Uint8Array, start: number, end: number): void {
  if (end <= start) return;
  const u = c.up;
  if (u === null || u.state !== U_READY || !c.upQ.empty || c.phase === P_CONNECT) {
    c.upQ.push(buf, start, end);
    if (c.upQ.bytes > MAX_QUEUED_BYTES) pauseClient(c, PAUSE_UPSTREAM);
    return;
  }
  const n = u.stream!.write(buf, start, end - start);
  if (n === end - start) return;
  if (n < 0) return; // the upstream's close follows
  c.upQ.push(buf, start + n, end);
  pauseClient(c, PAUSE_UPSTREAM);
}

/** The upstream can take more (or was just attached): write what waits for it. */
export function flushUp(c: HttpConn): void {
  const u = c.up;
  if (u === null || u.stream === null || c.phase === P_CONNECT) return;
  if (!c.upQ.empty && c.upQ.flushTo(u.stream) !== 1) return;
  resumeClient(c, PAUSE_UPSTREAM);
  // A client that sent FIN in a byte stream: pass it on once its bytes are through.
  if (c.phase === P_RAW && c.clientFin) u.stream.shutdown();
}

// ---- upstream -> client ----

/** Forward buf[start, end) to the client, or queue it behind what is waiting. */
export function sendDown(c: HttpConn, buf: Uint8Array, start: number, end: number): void {
  if (end <= start) return;
  const cl = c.client;
  if (cl === null) return;
  c.respStarted = true;
  if (c.rm !== null) c.rm.bytesOut.value += end - start;
  if (!c.downQ.empty) {
    c.downQ.push(buf, start, end);
    return;
  }
  const n = cl.write(buf, start, end - start);
  if (n === end - start || n < 0) return;
  c.downQ.push(buf, start + n, end);
  if (c.up !== null && c.up.stream !== null && !c.upPaused) {
    c.upPaused = true;
    c.up.stream.pause();
  }
}

/** A copy of scratch[0, len) to the client (scratch is reused: nothing may keep a view of it). */
export function sendDownCopy(c: HttpConn, buf: Uint8Array, len: number): void {
  const cl = c.client;
  if (cl === null) return;
  c.respStarted = true;
  if (!c.downQ.empty || c.clientKeepsRefs) {
    if (c.downQ.empty) {
      sendDown(c, buf.slice(0, len), 0, len);
      return;
    }
    c.downQ.push(buf.slice(0, len), 0, len);
    return;
  }
  const n = cl.write(buf, 0, len);
  if (n === len || n < 0) return;
  c.downQ.push(buf.slice(n, len), 0, len - n);
  if (c.up !== null && c.up.stream !== null && !c.upPaused) {
    c.upPaused = true;
    c.up.stream.pause();
  }
}

/** The client can take more: write what waits, then resume the upstream or finish closing. */
export function flushDown(c: HttpConn): void {
  const cl = c.client;
  if (cl === null) return;
  if (!c.downQ.empty && c.downQ.flushTo(cl) !== 1) return;
  if (c.phase === P_CLOSING) {
    cl.end();
    return;
  }
  if (c.upPaused && c.up !== null && c.up.stream !== null) {
    c.upPaused = false;
    c.up.stream.resume();
  }
  if (c.phase === P_RAW && c.upFin) {
    if (c.up === null) cl.end();
    else cl.shutdown();
  }
}

// ---- pausing the client ----

export function pauseClient(c: HttpConn, why: number): void {
  if (c.pausedFor === 0) c.client?.pause();
  c.pausedFor |= why;
}

export function resumeClient(c: HttpConn, why: number): void {
  if ((c.pausedFor & why) === 0) return;
  c.pausedFor &= ~why;
  if (c.pausedFor === 0) c.client?.resume();
}

export function pendingTooLarge(c: HttpConn): void {
  if (c.pendQ.bytes > MAX_QUEUED_BYTES) pauseClient(c, PAUSE_PENDING);
}

/** Feed pipelined bytes kept while a request was in flight, now that the connection is free. */
export function drainPending(c: HttpConn): void {
  if (c.draining) return;
  c.draining = true;
  try {
    const q = c.pendQ;
    while (!q.empty && c.phase === P_HEAD) {
      const buf = q.bufs[0]!;
      const end = q.ends[0]!;
      const k = consumeClientBytes(c, buf, q.starts[0]!, end);
      if (k >= end) q.shift();
      else q.advance(k);
    }
  } finally {
    c.draining = false;
  }
  if (c.pendQ.bytes <= MAX_QUEUED_BYTES) resumeClient(c, PAUSE_PENDING);
}

// ---- answers and endings ----

/** The gateway's own answer. keepAlive: the connection may carry the next request. */
export function answer(c: HttpConn, canned: Canned, keepAlive: boolean): void {
  const cl = c.client;
  if (cl === null) return;
  if (c.rm !== null) c.rm.responses[Math.floor(canned.status / 100)]!.value++;
  const bytes = keepAlive ? canned.keepAlive : canned.close;
  sendDown(c, bytes, 0, bytes.length);
  if (!keepAlive) closeWhenFlushed(c);
}

/** No more requests: end the client after what is queued for it. */
export function closeWhenFlushed(c: HttpConn): void {
  c.phase = P_CLOSING;
  c.deadline = 0;
  const up = c.up;
  if (up !== null) {
    c.up = null;
    up.close0(true);
  }
  c.pendQ.clear();
  if (c.downQ.empty) c.client?.end();
}

/** Reset the client and any upstream (a failure in the middle of a response). */
export function abortConn(c: HttpConn): void {
  c.phase = P_CLOSED;
  c.deadline = 0;
  const up = c.up;
  c.up = null;
  if (up !== null) up.close0(true);
  c.client?.terminate();
}

/** Back to waiting for the next request on this connection (`now`: the clock, when the caller has read it). */
export function resetForNextRequest(c: HttpConn, now = c.ctx.clock.now()): void {
  c.phase = P_HEAD;
  c.route = null;
  c.sel.match = null;
  c.dest = null;
  c.sp = null;
  c.tried.length = 0;
  c.attempts = 0;
  c.hashKey = "";
  c.reqMode = REQ_NONE;
  c.reqDone = true;
  c.replayable = false;
  c.h2 = false;
  c.rm = null;
  c.respState = R_HEAD;
  c.respAccLen = 0;
  c.respScanFrom = 0;
  c.respStarted = false;
  c.idle = true;
  c.needConnect = false;
  c.deadline = now + c.ctx.timeouts.idleMs;
}

/** The client socket closed (either way). */
export function clientClosed(c: HttpConn): void {
  c.client = null;
  if (c.phase === P_RAW && c.up !== null && c.up.stream !== null && c.upQ.empty) {
    // A byte stream whose client is gone: the upstream ends too.
    const up = c.up;
    c.up = null;
    up.close0(false);
  } else if (c.up !== null) {
    // Mid-exchange: the upstream's state is unknown (a half-sent request or an unread answer).
    const up = c.up;
    c.up = null;
    up.close0(true);
  }
  c.phase = P_CLOSED;
  maybeRelease(c);
}

export function maybeRelease(c: HttpConn): void {
  if (c.phase !== P_CLOSED || c.client !== null) return;
  const ctx = c.ctx;
  if (!ctx.live.delete(c)) return;
  ctx.active--;
  c.upQ.clear();
  c.downQ.clear();
  c.pendQ.clear();
  c.acc = null;
  c.respAcc = null;
  c.up = null;
  c.head.buf = EMPTY;
  c.client = null;
  // Released only after the client's close event (no more events for it) with every upstream's
  // owner cleared: the object can serve the next accepted connection. Saves the ~25 objects a
  // connection holds (head offset arrays, queues, scanners) per short connection.
  if (FREE.length < MAX_FREE_CONNS) FREE.push(c);
}

const EMPTY = new Uint8Array(0);
/** Released connections kept for reuse (at most this many: a burst's worth). */
const MAX_FREE_CONNS = 256;
const FREE: HttpConn[] = [];

/** A connection object in its initial state: a released one, or new. */
export function takeConn(ctx: GatewayContext): HttpConn {
  const c = FREE.pop();
  if (c === undefined) return new HttpConn(ctx);
  c.reuse(ctx);
  return c;
}
