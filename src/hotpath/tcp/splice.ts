// Moving bytes between the two sides of a proxied TCP connection, kube-proxy userspace style.
// The received chunk is written straight to the other side. A short write keeps that chunk and an
// offset (no copy, no subarray) and pauses the source until the destination's drain; chunks the
// runtime still delivers after pause() are queued by reference. FIN is passed on with shutdown()
// (end() would close both ways and lose the reply); a reset on one side resets the other.
// Handlers are two module-level objects; per-connection state lives in the pooled Conn.
// Elephant flows between two Bun sockets leave JS after ZC_ADOPT_AFTER_BYTES in chunks of at least
// ZC_MIN_CHUNK_BYTES (small request/response messages stay in JS): tryZeroCopy hands
// both fds to the splice(2) engine (zerocopy/), which moves the rest in the kernel.
// A tunnel upstream whose far agent takes early data gets the client's first bytes before it
// answers (Dial.early); they stay in Conn.early until then, for a replay if it answers FAILED.

import type { SocketHandler } from "bun";
import type { Endpoint } from "../../control/index.ts";
import type { ByteStream, StreamSink } from "../types.ts";
import { Conn, PHASE_CLOSED, PHASE_HEAD, PHASE_SPLICING, PHASE_ZEROCOPY, recycleConn } from "./conn.ts";
import { CONN_POOL_MAX, EARLY_BYTES_MAX, ZC_ADOPT_AFTER_BYTES, ZC_MIN_CHUNK_BYTES } from "../constants.ts";
import { socketFd, type ZeroCopyDoneInfo } from "../zerocopy/index.ts";
import { abandonDial, accept, dialFailed, onHeadBytes, reportResult } from "./dial.ts";

/**
 * Early data (tunnel): client bytes sent to the far agent before it answered, all kept for a
 * replay should it answer FAILED. Past this the client is not read until the answer. 64 KiB
 * covers a typical request and stays well inside yamux's initial 256 KiB stream window.
 */
export const EARLY_DATA_MAX_BYTES = 64 * 1024;

/**
 * One dial attempt. Its own object because an abandoned attempt (timed out, client gone) can
 * still complete later and must then find `conn === null` instead of a reused Conn. It is also
 * the StreamSink a RemoteDialer drives.
 */
export class Dial implements StreamSink {
  /** Early data: the stream taking the client's bytes before the far agent answered. */
  pending: ByteStream | null = null;
  /** Bytes at the front of conn.early the stream accepted before the answer (not replayed). */
  sent = 0;
  /** The client was resumed for early data: pause it again if this attempt fails. */
  resumed = false;
  /** The endpoint this attempt dials, for the warning if it fails. */
  ep: Endpoint | null = null;
  /** Through the tunnel (the endpoint is on another node). */
  remote = false;
  /** performance.now() when the attempt started, for the connect histogram. */
  startedMs = 0;
  constructor(public conn: Conn | null) {}
  open(stream: ByteStream): void {
    upstreamOpen(this, stream);
  }
  fail(error: Error): void {
    dialFailed(this, error);
  }
  early(stream: ByteStream): void {
    earlyOpen(this, stream);
  }
  data(chunk: Uint8Array): void {
    const c = this.conn;
    if (c !== null) sendDown(c, chunk);
  }
  drain(): void {
    const c = this.conn;
    if (c !== null) flushUp(c);
  }
  end(): void {
    upstreamEnd(this);
  }
  close(error?: Error): void {
    const c = this.conn;
    if (c !== null && c.dial === this) dialFailed(this, error);
    else upstreamClose(this, error);
  }
}

/** The sink a tunnel drives for a stream that arrived from a peer (the client side of a Conn). */
export class Inbound implements StreamSink {
  constructor(public conn: Conn | null) {}
  open(): void {}
  fail(): void {}
  data(chunk: Uint8Array): void {
    const c = this.conn;
    if (c !== null) clientData(c, chunk);
  }
  drain(): void {
    const c = this.conn;
    if (c !== null) flushDown(c);
  }
  end(): void {
    const c = this.conn;
    if (c !== null) clientEnd(c);
  }
  close(error?: Error): void {
    const c = this.conn;
    if (c === null) return;
    this.conn = null;
    clientClose(c, error);
  }
}

export const clientHandler: SocketHandler<Conn, "uint8array"> = {
  binaryType: "uint8array",
  open(s) {
    accept(s);
  },
  data(s, buf) {
    clientData(s.data, buf);
  },
  drain(s) {
    flushDown(s.data);
  },
  end(s) {
    clientEnd(s.data);
  },
  close(s, err) {
    clientClose(s.data, err);
  },
  error(s) {
    // A handler threw (a bug) or TLS failed; close follows. Never rethrow.
    const c = s.data;
    if (c instanceof Conn) c.ctx.m.resets.value++;
  },
};

export const upstreamHandler: SocketHandler<Dial, "uint8array"> = {
  binaryType: "uint8array",
  open(s) {
    s.setNoDelay(true);
    upstreamOpen(s.data, s as unknown as ByteStream);
  },
  connectError(s, error) {
    dialFailed(s.data, error);
  },
  data(s, buf) {
    const c = s.data.conn;
    if (c !== null) sendDown(c, buf);
  },
  drain(s) {
    const c = s.data.conn;
    if (c !== null) flushUp(c);
  },
  end(s) {
    upstreamEnd(s.data);
  },
  close(s, err) {
    upstreamClose(s.data, err);
  },
  error() {},
};

function clientData(c: Conn, buf: Uint8Array): void {
  if (c.phase === PHASE_SPLICING) {
    const up = c.upstream;
    if (up === null) return; // upstream gone: nowhere to put them
    c.ctx.m.bytesUp.value += buf.length;
    if (c.upBuf !== null) {
      c.upQueue.push(buf);
      return;
    }
    const n = up.write(buf, 0, buf.length);
    if (n === buf.length) {
      if (c.ctx.zc === null || c.zcTried) return;
      if (c.answered && c.ls !== null && c.ctx.zc.smallFlows) adoptKeepAlive(c);
      else if (n >= ZC_MIN_CHUNK_BYTES && (c.moved += n) >= ZC_ADOPT_AFTER_BYTES) tryZeroCopy(c);
      return;
    }
    if (n < 0) return abort(c);
    c.upBuf = buf;
    c.upOff = n;
    c.client!.pause();
    return;
  }
  if (c.phase === PHASE_CLOSED) return;
  // Reading the head, dialing or backing off: keep the bytes for replay.
  c.ctx.m.bytesUp.value += buf.length;
  c.early.push(buf);
  c.earlyBytes += buf.length;
  if (c.phase === PHASE_HEAD) return onHeadBytes(c);
  if (c.earlyBytes > EARLY_BYTES_MAX) return abort(c);
  const d = c.dial;
  if (d === null || !d.resumed) return;
  // Early data: send it on now (every earlier chunk went in full while pending is set).
  if (d.pending !== null) sendEarly(d, buf);
  if (c.earlyBytes >= EARLY_DATA_MAX_BYTES) c.client!.pause();
}

/**
 * The far agent takes early data: send what the client sent so far, and read more of it (up to
 * EARLY_DATA_MAX_BYTES) while the far agent dials. Everything stays in c.early until the answer:
 * SUCCESS drops what was sent, FAILED replays all of it on the next endpoint.
 */
function earlyOpen(d: Dial, stream: ByteStream): void {
  const c = d.conn;
  // Abandoned: open() terminates the stream; a client closed meanwhile has nothing to send.
  if (c === null || c.dial !== d || c.client === null) return;
  d.pending = stream;
  for (let i = 0; i < c.early.length; i++) if (!sendEarly(d, c.early[i]!)) break;
  if (c.earlyBytes < EARLY_DATA_MAX_BYTES && !c.clientFin) {
    d.resumed = true;
    c.client.resume();
  }
}

/** Writes a chunk ahead of the answer; false (and no more early writes) when it did not all go. */
function sendEarly(d: Dial, buf: Uint8Array): boolean {
  const n = d.pending!.write(buf, 0, buf.length);
  if (n > 0) d.sent += n;
  if (n === buf.length) return true;
  d.pending = null; // full or closed: the rest is replayed after SUCCESS (from d.sent on)
  return false;
}

function sendDown(c: Conn, buf: Uint8Array): void {
  const cl = c.client;
  if (cl === null) return;
  c.ctx.m.bytesDown.value += buf.length;
  c.answered = true;
  if (c.downBuf !== null) {
    c.downQueue.push(buf);
    return;
  }
  const n = cl.write(buf, 0, buf.length);
  if (n === buf.length) {
    if (c.ctx.zc !== null && !c.zcTried && n >= ZC_MIN_CHUNK_BYTES && (c.moved += n) >= ZC_ADOPT_AFTER_BYTES) tryZeroCopy(c);
    return;
  }
  if (n < 0) return abort(c);
  c.downBuf = buf;
  c.downOff = n;
  c.upstream?.pause();
}

/** Upstream writable again (or just connected): write what is pending toward it. */
function flushUp(c: Conn): void {
  const up = c.upstream;
  if (up === null || c.upBuf === null) return;
  let buf: Uint8Array | null = c.upBuf;
  while (buf !== null) {
    const len = buf.length - c.upOff;
    const n = up.write(buf, c.upOff, len);
    if (n < 0) return abort(c);
    if (n < len) {
      c.upOff += n;
      return;
    }
    buf = c.upQueue.length > 0 ? c.upQueue.shift()! : null;
    c.upBuf = buf;
    c.upOff = 0;
  }
  upFlushed(c, up);
}

function upFlushed(c: Conn, up: ByteStream): void {
  if (c.client === null) up.end();
  else if (c.clientFin) up.shutdown();
  else c.client.resume();
}

/** Client writable again: write what is pending toward it. */
function flushDown(c: Conn): void {
  const cl = c.client;
  if (cl === null || c.downBuf === null) return;
  let buf: Uint8Array | null = c.downBuf;
  while (buf !== null) {
    const len = buf.length - c.downOff;
    const n = cl.write(buf, c.downOff, len);
    if (n < 0) return abort(c);
    if (n < len) {
      c.downOff += n;
      return;
    }
    buf = c.downQueue.length > 0 ? c.downQueue.shift()! : null;
    c.downBuf = buf;
    c.downOff = 0;
  }
  const up = c.upstream;
  if (up === null) cl.end();
  else if (c.upstreamFin) cl.shutdown();
  else up.resume();
}

function upstreamOpen(d: Dial, stream: ByteStream): void {
  const c = d.conn;
  if (c === null || c.dial !== d) {
    // Abandoned attempt (timed out, or the client left): nobody wants this connection.
    d.conn = null;
    stream.terminate();
    return;
  }
  c.dial = null;
  c.ctx.waiting.delete(c);
  (d.remote ? c.ctx.connect.remote : c.ctx.connect.local).observe((performance.now() - d.startedMs) / 1000);
  c.upstream = stream;
  c.phase = PHASE_SPLICING;
  if (c.onResult !== null) reportResult(c, true); // the tunnel answers SUCCESS before any byte
  // Skip what already went ahead of the answer (early data on this same stream).
  let skip = d.sent;
  let first = 0;
  while (first < c.early.length && skip >= c.early[first]!.length) skip -= c.early[first++]!.length;
  d.pending = null;
  d.sent = 0;
  if (first === c.early.length) {
    c.early.length = 0;
    c.earlyBytes = 0;
    return upFlushed(c, stream);
  }
  // Replay what the client sent while we dialed, in order, with the normal backpressure
  // (a client read for early data waits too: upFlushed resumes it).
  if (d.resumed) c.client?.pause();
  c.upBuf = c.early[first]!;
  c.upOff = skip;
  for (let i = first + 1; i < c.early.length; i++) c.upQueue.push(c.early[i]!);
  c.early.length = 0;
  c.earlyBytes = 0;
  flushUp(c);
}

/**
 * The C flow loop forwards small messages without a JS callback each. A connection from our own
 * plain-TCP listener (no TLS, no tunnel stream: those have no fd) goes to it after its first
 * exchange: the client writes again after the upstream answered, i.e. a keep-alive flow. A
 * one-shot connection (connect, request, answer, close) stays in JS: handing it over costs more
 * than it saves (short-conn p50 0.26-0.29 ms in JS vs 0.32-0.33 ms adopted at connect). Called
 * right after a full write toward the upstream; if the engine is full, the connection stays in JS.
 */
function adoptKeepAlive(c: Conn): void {
  if (c.downBuf === null && !c.clientFin && !c.upstreamFin) tryZeroCopy(c);
}

function clientEnd(c: Conn): void {
  if (c.phase === PHASE_CLOSED) return;
  c.clientFin = true;
  if (c.phase === PHASE_HEAD) return onHeadBytes(c);
  if (c.phase === PHASE_SPLICING && c.upBuf === null) c.upstream?.shutdown();
}

function upstreamEnd(d: Dial): void {
  const c = d.conn;
  if (c === null) return;
  c.upstreamFin = true;
  if (c.downBuf === null) c.client?.shutdown();
}

function clientClose(c: Conn, err: Error | undefined): void {
  // Refused, already released, or our own close() at the zero-copy hand-over.
  if (c.phase === PHASE_CLOSED || c.phase === PHASE_ZEROCOPY) return;
  c.client = null;
  const up = c.upstream;
  // No upstream left: this is the close of our own end()/terminate(), nothing to pass on.
  const reset = err !== undefined || (up !== null && lostWithoutFin(c));
  if (reset) c.ctx.m.resets.value++;
  if (c.phase !== PHASE_SPLICING) {
    abandonDial(c);
    return maybeRelease(c);
  }
  if (up !== null) {
    if (reset) up.terminate();
    else if (c.upBuf === null) up.end(); // else flushUp ends it after the last bytes
  }
  maybeRelease(c);
}

/**
 * A side closed without an error, but no FIN came either way: with allowHalfOpen a peer's FIN
 * always shows as `end` first (or, once we shut our side, as the close itself), so this close is
 * a reset Bun lost: a RST that arrives while a write is in flight can be consumed by the write
 * and surface as a plain close (seen ~1 in 40 in a loopback experiment). Passing it on as a FIN
 * would tell the other peer the stream ended cleanly; reset it instead.
 */
function lostWithoutFin(c: Conn): boolean {
  return c.phase === PHASE_SPLICING && !c.clientFin && !c.upstreamFin;
}

function upstreamClose(d: Dial, err: Error | undefined): void {
  const c = d.conn;
  if (c === null) return;
  d.conn = null;
  c.upstream = null;
  const cl = c.client;
  const reset = err !== undefined || (cl !== null && lostWithoutFin(c));
  if (reset) c.ctx.m.resets.value++;
  if (cl !== null) {
    if (reset) cl.terminate();
    else if (c.downBuf === null) cl.end(); // else flushDown ends it after the last bytes
  }
  maybeRelease(c);
}

/** Reset both sides (a write failed, or too much early data). */
export function abort(c: Conn): void {
  const cl = c.client;
  const up = c.upstream;
  abandonDial(c);
  if (up !== null) up.terminate();
  if (cl !== null) cl.terminate();
}

/**
 * Hand a connection to the splice(2) engine, synchronously inside a data handler: nothing is
 * buffered in JS (both buffers empty, every byte so far written in full), no FIN seen, and both
 * sides are Bun TCP sockets (tunnel streams have no fd). adopt() dups both fds; our Bun sockets
 * are then closed with close(), which only drops Bun's reference: no FIN, no SO_LINGER (never
 * terminate(): it would arm SO_LINGER 0 on the socket the engine shares, and its later close
 * would reset). Bun cannot run its loop between adopt() and close(), so it reads nothing more.
 * The Conn stays live (and counted in both caps) until the engine reports the pair done.
 */
function tryZeroCopy(c: Conn): boolean {
  const zc = c.ctx.zc!;
  // The engine's worker starts on the first hand-over (a few ms): until it is up, adopt() refuses
  // and the connection stays in JS, to try again on its next write instead of giving up.
  c.zcTried = !zc.starting;
  const cl = c.client;
  const up = c.upstream;
  if (c.phase !== PHASE_SPLICING || cl === null || up === null) return false;
  if (c.upBuf !== null || c.downBuf !== null || c.clientFin || c.upstreamFin) return false;
  const fdA = socketFd(cl);
  const fdB = socketFd(up);
  if (fdA < 0 || fdB < 0) return false;
  const d = (up as unknown as { data: unknown }).data;
  if (!(d instanceof Dial) || d.conn !== c) return false;
  if (!zc.adopt(fdA, fdB, zeroCopyDone, c)) return false;
  c.phase = PHASE_ZEROCOPY;
  d.conn = null;
  c.client = null;
  c.upstream = null;
  // close() runs the close handlers synchronously; they return early on PHASE_ZEROCOPY / a
  // detached Dial.
  (cl as unknown as { close(): void }).close();
  (up as unknown as { close(): void }).close();
  return true;
}

/** The engine finished an adopted pair (both FINs passed, a side failed, or it was stopped). */
function zeroCopyDone(info: ZeroCopyDoneInfo, c: Conn): void {
  if (c.phase !== PHASE_ZEROCOPY) return;
  const m = c.ctx.m;
  m.bytesUp.value += info.bytesAtoB;
  m.bytesDown.value += info.bytesBtoA;
  if (info.reason !== "done") m.resets.value++;
  maybeRelease(c);
}

function maybeRelease(c: Conn): void {
  if (c.phase === PHASE_CLOSED || c.client !== null || c.upstream !== null || c.dial !== null) return;
  const ctx = c.ctx;
  ctx.live.delete(c);
  ctx.waiting.delete(c);
  ctx.active--;
  if (c.ls !== null) c.ls.active--;
  recycleConn(c, CONN_POOL_MAX);
}

