// The response side of an HTTP gateway connection: the upstream's head is read for framing (and
// rewritten only when the route changes response headers), head and body go to the client in as
// few writes as they came in, and the exchange ends when the framing says so: the upstream goes
// back to its pool if it is clean, and the connection waits for the next request (or takes the
// pipelined one already here). A 101 turns the connection into a byte stream both ways.

import { MAX_RESPONSE_HEAD_BYTES } from "../constants.ts";
import { BAD_GATEWAY } from "./canned.ts";
import { copyBytes } from "./bytes.ts";
import { CHUNKED_ERROR, CHUNKED_MORE } from "./chunked.ts";
import {
  abortConn,
  answer,
  closeWhenFlushed,
  drainPending,
  HttpConn,
  P_EXCHANGE,
  P_RAW,
  R_BODY,
  R_DONE,
  R_HEAD,
  resetForNextRequest,
  sendDown,
  sendDownCopy,
  sendUp,
} from "./conn.ts";
import { replay } from "./request.ts";
import { findHeadEnd } from "./request-head.ts";
import { BODY_CHUNKED, BODY_LENGTH, BODY_NONE, BODY_UNTIL_CLOSE, parseResponseHead, responseFraming } from "./response-head.ts";
import { writeResponseHead } from "./rewrite.ts";

/** A response body part up to this size leaves in the same write as a rewritten head. */
const COALESCE_BODY_BYTES = 16 * 1024;

/** Bytes from the attached upstream, buf[s, e). */
export function onUpstreamData(c: HttpConn, buf: Uint8Array, s: number, e: number): void {
  while (s < e) {
    if (c.phase === P_RAW) return sendDown(c, buf, s, e);
    if (c.phase !== P_EXCHANGE) return; // answered or closing: nothing more goes to the client
    if (c.respState === R_HEAD) {
      const k = feedResponseHead(c, buf, s, e);
      if (k < 0) return;
      s = k;
    } else if (c.respState === R_BODY) {
      s = feedResponseBody(c, buf, s, s, e);
    } else {
      // More than the framing announced: the connection is out of step, do not pool it.
      if (c.up !== null) c.up.broken = true;
      return;
    }
  }
}

/** Returns where the bytes after the head (and after any body sent with it) start, or -1. */
function feedResponseHead(c: HttpConn, buf: Uint8Array, s: number, e: number): number {
  let hb = buf;
  let hs = s;
  let he: number;
  let next: number;
  if (c.respAccLen === 0) {
    he = findHeadEnd(buf, s, s, e);
    if (he < 0) {
      if (e - s > MAX_RESPONSE_HEAD_BYTES) return badGateway(c);
      accumulate(c, buf, s, e);
      c.respScanFrom = c.respAccLen;
      return -1;
    }
    next = he;
  } else {
    const before = c.respAccLen;
    accumulate(c, buf, s, Math.min(e, s + MAX_RESPONSE_HEAD_BYTES + 4 - before));
    const acc = c.respAcc!;
    const end = findHeadEnd(acc, 0, c.respScanFrom, c.respAccLen);
    if (end < 0) {
      if (c.respAccLen > MAX_RESPONSE_HEAD_BYTES) return badGateway(c);
      c.respScanFrom = c.respAccLen;
      return -1;
    }
    hb = acc;
    hs = 0;
    he = end;
    next = s + (end - before);
    // The queue toward the client may keep a view of this buffer: the next head gets a new one.
    c.respAcc = null;
    c.respAccLen = 0;
    c.respScanFrom = 0;
  }
  const r = c.resp;
  if (!parseResponseHead(hb, hs, he, r)) return badGateway(c);
  if (r.status < 200) {
    if (r.status === 101) return switchProtocols(c, hb, hs, he, buf, next, e);
    // 100 Continue and other interim answers: pass on, the final head follows.
    sendDown(c, hb, hs, he);
    return next;
  }
  c.respMode = responseFraming(r, c.head.method);
  c.respRemaining = r.contentLength;
  c.respChunked.reset();
  c.respState = R_BODY;
  const ops = c.route?.responseHeaders ?? null;
  // The client connection ends after this response: tell an HTTP/1.1 client so.
  const closing = c.head.http11 && !r.close && (c.closeAfter || c.head.close || c.respMode === BODY_UNTIL_CLOSE);
  if (ops !== null || closing) {
    const out = c.ctx.scratch;
    out.len = 0;
    writeResponseHead(hb, r, ops, closing, out);
    if (c.respMode === BODY_LENGTH && next < e) {
      // The body part at hand goes in the same write as the rewritten head (a closing answer to
      // a short connection: one write instead of two).
      const n = Math.min(c.respRemaining, e - next);
      if (n <= COALESCE_BODY_BYTES) {
        out.bytes(buf, next, next + n);
        sendDownCopy(c, out.buf, out.len);
        if (c.rm !== null) c.rm.bytesOut.value += n;
        c.respRemaining -= n;
        if (c.respRemaining === 0) finishExchange(c, next + n < e);
        return next + n;
      }
    }
    sendDownCopy(c, out.buf, out.len);
    return feedResponseBody(c, buf, next, next, e);
  }
  if (hb === buf) return feedResponseBody(c, buf, hs, next, e); // head and body in one write
  sendDown(c, hb, hs, he);
  return feedResponseBody(c, buf, next, next, e);
}

function accumulate(c: HttpConn, buf: Uint8Array, s: number, e: number): void {
  const n = e - s;
  let acc = c.respAcc;
  if (acc === null || c.respAccLen + n > acc.length) {
    let size = acc === null ? 4096 : acc.length * 2;
    while (size < c.respAccLen + n) size *= 2;
    const grown = new Uint8Array(size);
    if (acc !== null) copyBytes(acc, 0, c.respAccLen, grown, 0);
    acc = grown;
    c.respAcc = acc;
  }
  copyBytes(buf, s, e, acc, c.respAccLen);
  c.respAccLen += n;
}

/**
 * Body bytes buf[from, e) (sent together with buf[sendFrom, from), the head, when that is not
 * yet sent). Returns the index after the body part, e when all of it was body.
 */
function feedResponseBody(c: HttpConn, buf: Uint8Array, sendFrom: number, from: number, e: number): number {
  switch (c.respMode) {
    case BODY_LENGTH: {
      const n = Math.min(c.respRemaining, e - from);
      sendDown(c, buf, sendFrom, from + n);
      c.respRemaining -= n;
      if (c.respRemaining === 0) finishExchange(c, from + n < e);
      return from + n;
    }
    case BODY_CHUNKED: {
      const r = c.respChunked.scan(buf, from, e);
      if (r === CHUNKED_MORE) {
        sendDown(c, buf, sendFrom, e);
        return e;
      }
      if (r === CHUNKED_ERROR) {
        // Part of the response is out already: the client can only be told by a reset.
        sendDown(c, buf, sendFrom, from);
        c.ctx.m.badGateway.value++;
        abortConn(c);
        return e;
      }
      sendDown(c, buf, sendFrom, r);
      finishExchange(c, r < e);
      return r;
    }
    case BODY_UNTIL_CLOSE:
      sendDown(c, buf, sendFrom, e);
      return e;
    default:
      // BODY_NONE
      sendDown(c, buf, sendFrom, from);
      finishExchange(c, from < e);
      return from;
  }
}

/** 101: pass the head on and carry bytes both ways from now on (WebSocket, h2c upgrade). */
function switchProtocols(c: HttpConn, hb: Uint8Array, hs: number, he: number, buf: Uint8Array, next: number, e: number): number {
  if (!c.head.upgrade) return badGateway(c); // an upgrade nobody asked for
  const ctx = c.ctx;
  ctx.m.upgrades.value++;
  c.phase = P_RAW;
  c.deadline = 0;
  if (c.up !== null) c.up.broken = true;
  if (c.rm !== null) c.rm.responses[1]!.value++;
  sendDown(c, hb, hs, he);
  // Bytes the client sent after the upgrade request are the new protocol's.
  const q = c.pendQ;
  while (!q.empty) {
    sendUp(c, q.bufs[0]!, q.starts[0]!, q.ends[0]!);
    q.shift();
  }
  sendDown(c, buf, next, e);
  return e;
}

function badGateway(c: HttpConn): number {
  c.ctx.m.badGateway.value++;
  if (!c.respStarted) {
    const up = c.up;
    c.up = null;
    up?.close0(true);
    answer(c, BAD_GATEWAY, false);
  } else abortConn(c);
  return -1;
}

/** The response is complete: account, give the upstream back (or close it), next request. */
export function finishExchange(c: HttpConn, extraBytes: boolean): void {
  const ctx = c.ctx;
  c.respState = R_DONE;
  // One clock read for the duration, the pool's idle mark and the keep-alive deadline.
  const now = ctx.clock.now();
  const rm = c.rm;
  if (rm !== null) {
    rm.responses[Math.min(5, Math.floor(c.resp.status / 100))]!.value++;
    rm.duration.observe((now - c.started) / 1000);
  }
  const u = c.up;
  c.up = null;
  if (u !== null) {
    if (extraBytes) u.broken = true;
    if (c.upPaused) {
      c.upPaused = false;
      u.stream?.resume();
    }
    const clean = c.reqDone && c.upQ.empty && !c.resp.close && c.respMode !== BODY_UNTIL_CLOSE && !u.broken;
    if (clean) ctx.pool.release(u, now);
    else u.close0(!c.reqDone || !c.upQ.empty);
  }
  c.upQ.clear();
  // A body that ran until the upstream closed ends the client connection the same way.
  if (!c.reqDone || c.closeAfter || c.head.close || c.respMode === BODY_UNTIL_CLOSE) {
    closeWhenFlushed(c);
    return;
  }
  c.deadline = 0;
  resetForNextRequest(c, now);
  drainPending(c);
}

/** The attached upstream sent FIN, or closed (error: it was reset). */
export function upstreamEnded(c: HttpConn, error: Error | undefined): void {
  const u = c.up;
  if (c.phase === P_RAW) {
    if (error !== undefined) return abortConn(c);
    c.upFin = true;
    if (c.downQ.empty) {
      if (c.client !== null) c.client.shutdown();
    }
    if (u !== null && u.stream === null) {
      // Fully closed: nothing more can go up either.
      c.up = null;
      if (c.downQ.empty) c.client?.end();
    }
    return;
  }
  if (c.phase !== P_EXCHANGE || u === null) return;
  if (c.respState === R_BODY && c.respMode === BODY_UNTIL_CLOSE && error === undefined) {
    // The body ran until the upstream closed: that is its end.
    u.broken = true;
    return finishExchange(c, false);
  }
  if (c.respState === R_HEAD && !c.respStarted && c.respAccLen === 0 && u.reused && c.replayable && c.reqDone) {
    // A pooled connection the server had closed (keep-alive race): nothing was answered and the
    // request has no body, so it can go again on a new connection.
    c.up = null;
    u.close0(true);
    return replay(c);
  }
  badGateway(c);
}

