// The request side of an HTTP gateway connection: assembling the head, routing it, framing the
// body, getting an upstream (pooled, or a new connection with retries on connect failure) and
// sending the head. A request that fails before an upstream answered gets the gateway's own
// status (404 no route, 503 no healthy upstream, 504 timeout), never a silent close.

import { MAX_REQUEST_HEAD_BYTES } from "../constants.ts";
import { routeMetrics } from "../context.ts";
import { pickDestination, pickOtherDestination, selectRoute, selectVirtualHost } from "../route.ts";
import { Upstream, upstreamSocketHandler } from "../upstream.ts";
import { cannedFor, GATEWAY_TIMEOUT, METHOD_NOT_ALLOWED, NOT_FOUND, UNAVAILABLE, REQUEST_TIMEOUT } from "./canned.ts";
import { copyBytes } from "./bytes.ts";
import { CHUNKED_ERROR, CHUNKED_MORE } from "./chunked.ts";
import {
  abortConn,
  answer,
  closeWhenFlushed,
  flushUp,
  HttpConn,
  P_CLOSING,
  P_CONNECT,
  P_EXCHANGE,
  P_HEAD,
  P_RAW,
  pauseClient,
  pendingTooLarge,
  drainPending,
  REQ_CHUNKED,
  REQ_LENGTH,
  REQ_NONE,
  REQ_RAW,
  resetForNextRequest,
  sendUp,
} from "./conn.ts";
import { findHeadEnd, parseRequestHead, PARSE_H2, PARSE_OK } from "./request-head.ts";
import { writeUpstreamHead } from "./rewrite.ts";

/** A request body up to this size that is already here leaves in the same write as its head. */
const COALESCE_BODY_BYTES = 16 * 1024;

/** Bytes from the client socket. */
export function onClientData(c: HttpConn, chunk: Uint8Array): void {
  if (c.phase >= P_CLOSING) return;
  if (!c.pendQ.empty) {
    // Earlier pipelined bytes wait: these go behind them.
    c.pendQ.push(chunk, 0, chunk.length);
    pendingTooLarge(c);
    if (c.phase === P_HEAD) drainPending(c);
    return;
  }
  const k = consumeClientBytes(c, chunk, 0, chunk.length);
  if (k < chunk.length) {
    c.pendQ.push(chunk, k, chunk.length);
    pendingTooLarge(c);
    // The request in flight may have been answered meanwhile (a 503 found at once).
    if (c.phase === P_HEAD) drainPending(c);
  }
}

/**
 * Takes client bytes buf[s, e) as far as the connection's state allows and returns where it
 * stopped: e, or the start of bytes that belong to a request after the one in flight.
 */
export function consumeClientBytes(c: HttpConn, buf: Uint8Array, s: number, e: number): number {
  let stop = e;
  loop: while (s < e) {
    switch (c.phase) {
      case P_HEAD: {
        const k = feedHead(c, buf, s, e);
        if (k < 0) break loop;
        s = k;
        break;
      }
      case P_CONNECT:
      case P_EXCHANGE:
        if (c.reqDone) {
          stop = s;
          break loop;
        }
        s = feedBody(c, buf, s, e);
        break;
      case P_RAW:
        sendUp(c, buf, s, e);
        break loop;
      default:
        break loop;
    }
  }
  // Connecting after the bytes at hand are queued lets a small body leave with the head.
  if (c.needConnect) {
    c.needConnect = false;
    connectUpstream(c);
  }
  return stop;
}

/** Returns the index just past a complete head (after routing it), or -1 when all was absorbed. */
function feedHead(c: HttpConn, buf: Uint8Array, s: number, e: number): number {
  const ctx = c.ctx;
  if (c.accLen === 0) {
    const end = findHeadEnd(buf, s, s, e);
    if (end >= 0) {
      // A whole head in one read (the common case): no header deadline to set (dispatch clears it).
      c.idle = false;
      if (end - s > MAX_REQUEST_HEAD_BYTES) return tooLarge(c);
      dispatch(c, buf, s, end);
      return end;
    }
    if (c.idle) {
      // The first bytes of a head: from now on it must be complete within the header timeout.
      c.idle = false;
      c.deadline = ctx.clock.now() + ctx.timeouts.headerMs;
    }
    if (e - s > MAX_REQUEST_HEAD_BYTES) return tooLarge(c);
    accumulate(c, buf, s, e);
    c.scanFrom = c.accLen;
    return -1;
  }
  // The head continues from an earlier read: add at most what a head may still need.
  const before = c.accLen;
  const take = Math.min(e - s, MAX_REQUEST_HEAD_BYTES + 4 - before);
  accumulate(c, buf, s, s + take);
  const acc = c.acc!;
  const end = findHeadEnd(acc, 0, c.scanFrom, c.accLen);
  if (end < 0) {
    if (c.accLen > MAX_REQUEST_HEAD_BYTES) return tooLarge(c);
    c.scanFrom = c.accLen;
    return -1;
  }
  // The head keeps its buffer (it is read again to send it upstream); the next head gets a new one.
  c.acc = null;
  c.accLen = 0;
  c.scanFrom = 0;
  dispatch(c, acc, 0, end);
  return s + (end - before);
}

function accumulate(c: HttpConn, buf: Uint8Array, s: number, e: number): void {
  const n = e - s;
  let acc = c.acc;
  if (acc === null || c.accLen + n > acc.length) {
    let size = acc === null ? 4096 : acc.length * 2;
    while (size < c.accLen + n) size *= 2;
    const next = new Uint8Array(size);
    if (acc !== null) copyBytes(acc, 0, c.accLen, next, 0);
    acc = next;
    c.acc = acc;
  }
  copyBytes(buf, s, e, acc, c.accLen);
  c.accLen += n;
}

function tooLarge(c: HttpConn): number {
  c.ctx.m.tooLarge.value++;
  c.acc = null;
  c.accLen = 0;
  answer(c, cannedFor(431), false);
  return -1;
}

/** A complete head in buf[hs, he): parse, route, frame the body, and ask for an upstream. */
function dispatch(c: HttpConn, buf: Uint8Array, hs: number, he: number): void {
  const ctx = c.ctx;
  const h = c.head;
  const code = parseRequestHead(buf, hs, he, h);
  c.started = ctx.clock.now();
  c.deadline = 0;
  if (code === PARSE_H2) return dispatchH2(c, buf, hs, he);
  if (code !== PARSE_OK) {
    if (code === 431) ctx.m.tooLarge.value++;
    else ctx.m.badRequest.value++;
    return answer(c, cannedFor(code), false);
  }
  if (h.method === "CONNECT") {
    ctx.m.badRequest.value++;
    return answer(c, METHOD_NOT_ALLOWED, false);
  }
  if (h.chunked) {
    c.reqMode = REQ_CHUNKED;
    c.reqChunked.reset();
  } else if (h.contentLength > 0) {
    c.reqMode = REQ_LENGTH;
    c.reqRemaining = h.contentLength;
  } else c.reqMode = REQ_NONE;
  c.reqDone = c.reqMode === REQ_NONE;
  c.replayable = c.reqDone;
  c.closeAfter = h.close;
  const port = ctx.gateway.current().byPort[c.portKey];
  const vh = port === undefined ? null : selectVirtualHost(port, h.host);
  const route = vh === null ? null : selectRoute(vh, h, c.listenPort, c.sel);
  if (route === null) {
    ctx.m.noRoute.value++;
    // A body we will not read makes the connection unusable for the next request.
    answer(c, NOT_FOUND, c.reqDone && !h.close);
    if (c.phase === P_HEAD) resetForNextRequest(c);
    return;
  }
  c.route = route;
  if (c.rmRoute !== route) {
    c.rmRoute = route;
    c.rmOfRoute = routeMetrics(ctx, route.id);
  }
  c.rm = c.rmOfRoute;
  c.dest = pickDestination(route, ctx.random);
  c.attempts = 0;
  c.tried.length = 0;
  c.hashKey = "";
  c.phase = P_CONNECT;
  c.needConnect = true;
}

/** HTTP/2 with prior knowledge: routed once like "GET /" without a Host, then passed through. */
function dispatchH2(c: HttpConn, buf: Uint8Array, hs: number, he: number): void {
  const ctx = c.ctx;
  const port = ctx.gateway.current().byPort[c.portKey];
  const vh = port === undefined ? null : selectVirtualHost(port, c.sniHost);
  const h = c.head;
  h.method = "GET";
  h.target = h.path = "/";
  h.query = "";
  h.host = c.sniHost;
  h.count = 0;
  const route = vh === null ? null : selectRoute(vh, h, c.listenPort, c.sel);
  if (route === null) {
    ctx.m.noRoute.value++;
    // An h2 client cannot read an HTTP/1.1 answer; close.
    return closeWhenFlushed(c);
  }
  c.route = route;
  c.rm = routeMetrics(ctx, route.id);
  c.dest = pickDestination(route, ctx.random);
  c.h2 = true;
  c.reqMode = REQ_RAW;
  c.reqDone = false;
  c.replayable = false;
  c.phase = P_CONNECT;
  c.upQ.push(buf, hs, he);
  c.needConnect = true;
}

/** Request body bytes from buf[s, e): forward what belongs to this request, return where it ends. */
function feedBody(c: HttpConn, buf: Uint8Array, s: number, e: number): number {
  if (c.rm !== null) c.rm.bytesIn.value += e - s;
  switch (c.reqMode) {
    case REQ_LENGTH: {
      const n = Math.min(c.reqRemaining, e - s);
      sendUp(c, buf, s, s + n);
      c.reqRemaining -= n;
      if (c.reqRemaining === 0) c.reqDone = true;
      return s + n;
    }
    case REQ_CHUNKED: {
      const r = c.reqChunked.scan(buf, s, e);
      if (r === CHUNKED_MORE) {
        sendUp(c, buf, s, e);
        return e;
      }
      if (r === CHUNKED_ERROR) {
        c.ctx.m.badRequest.value++;
        if (c.up === null || !c.respStarted) answer(c, cannedFor(400), false);
        else abortConn(c);
        return e;
      }
      sendUp(c, buf, s, r);
      c.reqDone = true;
      return r;
    }
    default:
      sendUp(c, buf, s, e);
      return e;
  }
}

/** Find an upstream for the current destination: a pooled connection, or a new one. */
export function connectUpstream(c: HttpConn): void {
  const ctx = c.ctx;
  const route = c.route!;
  for (let guard = 0; guard < 8; guard++) {
    const dest = c.dest;
    const sp = dest === null || dest.key === "" ? undefined : ctx.routes.current().byKey[dest.key];
    let idx = -1;
    if (sp !== undefined && sp.endpoints.length > 0) {
      c.sp = sp;
      if (sp.policy.kind === "CONSISTENT_HASH_HEADER" && c.hashKey === "") c.hashKey = c.head.header(sp.policy.header) ?? "";
      idx = ctx.balancer.pick(sp, c.clientIp, c.hashKey, c.tried);
      if (idx < 0 && c.tried.length > 0 && route.destinations.length === 1) {
        // Every endpoint was tried and retries remain: start over (the next round may succeed).
        c.tried.length = 0;
        idx = ctx.balancer.pick(sp, c.clientIp, c.hashKey, c.tried);
      }
    }
    if (idx < 0) {
      // This destination has nothing (left) to try: another weighted destination, if any.
      const other = dest === null ? null : pickOtherDestination(route, dest, ctx.random);
      if (other !== null && other !== dest && c.attempts <= route.retries) {
        c.dest = other;
        c.tried.length = 0;
        continue;
      }
      return fail(c, UNAVAILABLE_STATUS);
    }
    c.tried.push(idx);
    const ep = sp!.endpoints[idx]!;
    if (c.keyEp !== ep) {
      // The pool key of this endpoint (kept: a keep-alive connection asks for the same one again).
      c.keyEp = ep;
      c.keyLocal = ctx.remote === undefined || ep.node === "" || ep.node === ctx.nodeName;
      c.keyOfEp = c.keyLocal ? `|${ep.ip}:${ep.port}` : `${ep.node}|${ep.ip}:${ep.port}`;
    }
    const local = c.keyLocal;
    const key = c.keyOfEp;
    const pooled = ctx.pool.take(key, c);
    if (pooled !== null) {
      ctx.m.upstreamReused.value++;
      c.up = pooled;
      c.phase = c.h2 ? P_RAW : P_EXCHANGE;
      c.deadline = route.timeoutMs > 0 ? c.started + route.timeoutMs : 0;
      return sendRequestHead(c);
    }
    const u = new Upstream(key, ctx.pool, c);
    u.copyWrites = !local;
    c.up = u;
    c.deadline = ctx.clock.now() + (route.perTryTimeoutMs > 0 ? route.perTryTimeoutMs : ctx.timeouts.connectMs);
    if (local) {
      try {
        // connectError reports a failure; the promise is not needed.
        void Bun.connect<Upstream>({ hostname: ep.ip, port: ep.port, allowHalfOpen: true, data: u, socket: upstreamSocketHandler as never });
      } catch (err) {
        u.fail(err as Error);
      }
    } else {
      ctx.remote!.dial(ep.node, ep.ip, ep.port, "TCP", u);
    }
    return;
  }
  fail(c, UNAVAILABLE_STATUS);
}

const UNAVAILABLE_STATUS = 503;
const TIMEOUT_STATUS = 504;

/** A connect attempt failed or timed out: another endpoint while retries last, else 503. */
export function retryOrFail(c: HttpConn): void {
  if (c.phase !== P_CONNECT || c.route === null) return;
  c.attempts++;
  if (c.attempts > c.route.retries) return fail(c, UNAVAILABLE_STATUS);
  connectUpstream(c);
}

function fail(c: HttpConn, status: number): void {
  const m = c.ctx.m;
  const up = c.up;
  c.up = null;
  if (up !== null) {
    up.owner = null;
    up.close0(true);
  }
  if (status === TIMEOUT_STATUS) m.gatewayTimeout.value++;
  else m.unavailable.value++;
  c.upQ.clear();
  // The connection stays usable only when no body is left unread.
  answer(c, status === TIMEOUT_STATUS ? GATEWAY_TIMEOUT : UNAVAILABLE, c.reqDone && !c.closeAfter && !c.h2);
  if (c.phase !== P_CLOSING) {
    resetForNextRequest(c);
    drainPending(c);
  }
}

/** The upstream is attached and writable: send the head (with a small body already here). */
export function sendRequestHead(c: HttpConn): void {
  const ctx = c.ctx;
  const u = c.up!;
  if (c.h2) {
    ctx.m.upgrades.value++;
    flushUp(c);
    return;
  }
  const out = ctx.scratch;
  out.len = 0;
  writeUpstreamHead(c.head, c.route!, c, out);
  if (c.rm !== null) c.rm.bytesIn.value += c.head.end - c.head.start;
  const q = c.upQ;
  if (!q.empty && q.bytes <= COALESCE_BODY_BYTES) {
    for (let i = 0; i < q.bufs.length; i++) out.bytes(q.bufs[i]!, q.starts[i]!, q.ends[i]!);
    q.clear();
  }
  const len = out.len;
  // A tunnel stream queues what it is given by reference: it gets its own copy.
  const n = u.copyWrites ? u.stream!.write(out.buf.slice(0, len), 0, len) : u.stream!.write(out.buf, 0, len);
  if (n >= 0 && n < len) {
    // The scratch buffer is reused by the next request: keep a copy of what did not go.
    q.unshift(out.buf.slice(n, len), 0, len - n);
    pauseClient(c, 1);
    return;
  }
  flushUp(c);
}

/** Re-send a body-less request on a new connection after a pooled one closed without answering. */
export function replay(c: HttpConn): void {
  c.ctx.m.upstreamReplays.value++;
  c.tried.pop();
  c.phase = P_CONNECT;
  connectUpstream(c);
}

/** The sweep found this connection's deadline passed. */
export function expireConn(c: HttpConn, _now: number): void {
  c.deadline = 0;
  switch (c.phase) {
    case P_HEAD:
      if (c.idle) {
        // Keep-alive with nothing asked: close quietly.
        closeWhenFlushed(c);
      } else {
        c.ctx.m.headerTimeout.value++;
        c.acc = null;
        c.accLen = 0;
        answer(c, REQUEST_TIMEOUT, false);
      }
      return;
    case P_CONNECT: {
      const up = c.up;
      c.up = null;
      if (up !== null) up.owner = null; // abandoned: closed when (if) it opens
      c.ctx.m.upstreamConnectFailures.value++;
      return retryOrFail(c);
    }
    case P_EXCHANGE:
      if (!c.respStarted) return fail(c, TIMEOUT_STATUS);
      return abortConn(c);
    default:
      return;
  }
}

