// The SOCKS5 listener (modules.edgeProxy.socks5Proxy): EdgeMesh's way to reach a port on an edge
// node in another LAN (`ssh -o ProxyCommand='nc --proxy-type socks5 --proxy 169.254.96.16:10800
// %h %p' node-b`). A connection reads the greeting and the request (RFC 1928, no authentication),
// decide() picks the node, and from then on the connection is the proxy's: the same splice, the
// same tunnel dialer and the same connection cap as a service connection (Proxy.spliceTo). The
// listener only adds the handshake, its timeout, and its own per-port cap.
//
// Handlers are one module-level object; per-connection state is a SocksConn, which is also the
// ByteStream the splice writes to (a pass-through to the Bun socket: one call, no allocation).

import type { Socket, SocketHandler, TCPSocketListener } from "bun";
import type { Logger } from "../../log/index.ts";
import { LATENCY_BUCKETS_SECONDS, type Counter, type Histogram, type MetricsRegistry } from "../../metrics/index.ts";
import type { ByteStream, Proxy, StreamSink } from "../types.ts";
import { decide, replyForDialError, type NodeDirectory } from "./decide.ts";
import {
  GREETING_MAX_BYTES,
  NEED_MORE,
  parseGreeting,
  parseRequest,
  REP_GENERAL_FAILURE,
  REP_SUCCEEDED,
  REPLY_NAMES,
  reply,
  REQUEST_MAX_BYTES,
  SELECT_NO_AUTH,
  SELECT_NONE_ACCEPTABLE,
  type SocksRequest,
} from "./protocol.ts";

const second = 1000;

/**
 * A client that has not finished greeting and request by then is cut (a real client sends both
 * within a round trip; a slow or silent one would hold a descriptor for nothing).
 */
export const HANDSHAKE_TIMEOUT_MS = 10 * second;
/** Resolution of the one timer that expires handshakes. */
const HANDSHAKE_SWEEP_MS = 1 * second;
/** Room for a greeting and a request that arrive split across reads (both at their longest). */
const HANDSHAKE_BUFFER_BYTES = GREETING_MAX_BYTES + REQUEST_MAX_BYTES;

const PHASE_GREETING = 0;
const PHASE_REQUEST = 1;
/** Handed to the proxy: dialing, then splicing. Events go to `sink`. */
const PHASE_PROXIED = 2;
/** Refused or failed: a reply may still be on its way out, then the socket closes. */
const PHASE_DONE = 3;

export interface Socks5Options {
  /** The bridge IP (169.254.96.16), as EdgeMesh: reachable from pods and host processes. */
  readonly host: string;
  /** socks5Proxy.listenPort (10800); 0 picks a free port (tests). */
  readonly port: number;
  readonly nodeName: string;
  readonly proxy: Pick<Proxy, "spliceTo" | "stats">;
  /** The current Node directory (cheap: called once per request). */
  readonly nodes: () => NodeDirectory;
  /** The agent-wide cap the proxy enforces; connections still in the handshake count too. */
  readonly maxConnections: number;
  /** modules.edgeProxy.maxConnectionsPerPort: this listener's own cap; 0 = none. */
  readonly maxConnectionsPerPort: number;
  readonly handshakeTimeoutMs?: number;
  readonly metrics: MetricsRegistry;
  readonly log: Logger;
  readonly clock?: { now(): number };
}

export interface Socks5Server {
  /** Bind and listen; throws when the address cannot be bound. */
  start(): void;
  /** The bound port (after start). */
  readonly port: number;
  /** Stop accepting and cut connections still in the handshake (proxied ones are the proxy's). */
  stop(): void;
  stats(): { active: number; handshaking: number };
}

interface Metrics {
  accepted: Counter;
  refusedLimit: Counter;
  malformedGreeting: Counter;
  malformedRequest: Counter;
  noMethod: Counter;
  timeout: Counter;
  abandoned: Counter;
  replies: Counter[];
  /** Request read -> CONNECT succeeded (the reply goes out): the tunnel stream and the far dial. */
  connectSeconds: Histogram;
}

interface State {
  readonly o: Socks5Options;
  readonly m: Metrics;
  readonly clock: { now(): number };
  readonly timeoutMs: number;
  /** Connections in the greeting or request, with their deadline. */
  readonly handshaking: Set<SocksConn>;
  /** Accepted and not yet closed (the per-port count). */
  active: number;
  accepting: boolean;
}

class SocksConn implements ByteStream {
  sock: Socket<SocksConn> | null;
  phase = PHASE_GREETING;
  deadline: number;
  /** Handshake bytes kept across reads (allocated only when a message arrives split). */
  buf: Uint8Array | null = null;
  len = 0;
  sink: StreamSink | null = null;
  /** A failure reply went out: the splice's terminate() must not reset it away. */
  replied = false;
  target = "";
  startedAt = 0;

  constructor(
    readonly st: State,
    sock: Socket<SocksConn>,
  ) {
    this.sock = sock;
    this.deadline = st.clock.now() + st.timeoutMs;
  }

  // ByteStream for the splice: the Bun socket, except that a reset after a failure reply
  // becomes a graceful close (the client must read the reply).
  write(data: Uint8Array, offset?: number, length?: number): number {
    const s = this.sock;
    return s === null ? -1 : s.write(data, offset, length);
  }
  shutdown(): void {
    this.sock?.shutdown();
  }
  end(): void {
    this.sock?.end();
  }
  terminate(): void {
    if (this.replied) this.sock?.end();
    else this.sock?.terminate();
  }
  pause(): void {
    this.sock?.pause();
  }
  resume(): void {
    this.sock?.resume();
  }
}

export function createSocks5Server(o: Socks5Options): Socks5Server {
  const counter = (name: string, help: string, labels?: Record<string, string>) => o.metrics.counter(name, help, labels);
  const failures = (reason: string) => counter("socks5_handshake_failures_total", "SOCKS5 connections dropped before a request was read", { reason });
  const replies: Counter[] = [];
  for (const [code, name] of Object.entries(REPLY_NAMES)) {
    replies[Number(code)] = counter("socks5_replies_total", "SOCKS5 CONNECT replies sent, by RFC 1928 reply code", { reply: name });
  }
  const st: State = {
    o,
    m: {
      accepted: counter("socks5_accepted_total", "SOCKS5 connections accepted"),
      refusedLimit: counter("socks5_refused_total", "SOCKS5 connections refused before the handshake", { reason: "limit" }),
      malformedGreeting: failures("malformed_greeting"),
      malformedRequest: failures("malformed_request"),
      noMethod: failures("no_acceptable_method"),
      timeout: failures("timeout"),
      abandoned: failures("closed"),
      replies,
      connectSeconds: o.metrics.histogram(
        "socks5_connect_duration_seconds",
        "SOCKS5 CONNECTs that succeeded: from the request to the success reply (tunnel stream and the far agent's dial)",
        LATENCY_BUCKETS_SECONDS,
      ),
    },
    clock: o.clock ?? Date,
    timeoutMs: o.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS,
    handshaking: new Set(),
    active: 0,
    accepting: false,
  };
  o.metrics.gaugeFn("socks5_active", "SOCKS5 connections open now (handshake and proxied)", () => st.active);

  let listener: TCPSocketListener<State> | null = null;
  let timer: ReturnType<typeof setInterval> | null = null;

  const sweep = (): void => {
    if (st.handshaking.size === 0) return;
    const now = st.clock.now();
    for (const c of st.handshaking) {
      if (now < c.deadline) continue;
      st.handshaking.delete(c);
      st.m.timeout.value++;
      c.phase = PHASE_DONE;
      c.sock?.terminate();
    }
  };

  return {
    start() {
      if (listener !== null) return;
      listener = Bun.listen<State>({ hostname: o.host, port: o.port, allowHalfOpen: true, data: st, socket: handler as never });
      st.accepting = true;
      timer = setInterval(sweep, Math.min(HANDSHAKE_SWEEP_MS, Math.max(10, st.timeoutMs / 4)));
      timer.unref?.();
    },
    get port() {
      return listener?.port ?? 0;
    },
    stop() {
      st.accepting = false;
      listener?.stop(false);
      listener = null;
      if (timer !== null) clearInterval(timer);
      timer = null;
      for (const c of [...st.handshaking]) {
        st.handshaking.delete(c);
        c.phase = PHASE_DONE;
        c.sock?.terminate();
      }
    },
    stats: () => ({ active: st.active, handshaking: st.handshaking.size }),
  };
}

const handler: SocketHandler<SocksConn, "uint8array"> = {
  binaryType: "uint8array",
  open(s) {
    accept(s);
  },
  data(s, chunk) {
    const c = s.data;
    if (c.phase === PHASE_PROXIED) c.sink?.data(chunk);
    else if (c.phase !== PHASE_DONE) onHandshakeBytes(c, chunk);
  },
  drain(s) {
    s.data.sink?.drain();
  },
  end(s) {
    const c = s.data;
    if (c.phase === PHASE_PROXIED) c.sink?.end();
    else if (c.phase !== PHASE_DONE) {
      // FIN before a complete request: nothing to do for this client.
      c.st.handshaking.delete(c);
      c.st.m.abandoned.value++;
      c.phase = PHASE_DONE;
      s.end();
    }
  },
  close(s, err) {
    const c = s.data;
    if (!(c instanceof SocksConn)) return; // refused at accept
    c.sock = null;
    c.st.active--;
    if (c.st.handshaking.delete(c)) c.st.m.abandoned.value++;
    const sink = c.sink;
    c.sink = null;
    sink?.close(err);
  },
  error() {
    // close follows; never rethrow
  },
};

/** Listener `open`: the socket's data is still the listener's State. */
function accept(s: Socket<SocksConn>): void {
  const st = s.data as unknown as State;
  st.m.accepted.value++;
  const o = st.o;
  if (
    !st.accepting ||
    st.handshaking.size + o.proxy.stats().activeTcp >= o.maxConnections ||
    (o.maxConnectionsPerPort > 0 && st.active >= o.maxConnectionsPerPort)
  ) {
    st.m.refusedLimit.value++;
    s.data = null as never;
    s.terminate();
    return;
  }
  const c = new SocksConn(st, s);
  s.data = c;
  s.setNoDelay(true);
  st.active++;
  st.handshaking.add(c);
}

function onHandshakeBytes(c: SocksConn, chunk: Uint8Array): void {
  if (c.len === 0) return advance(c, chunk, 0, chunk.length, null, 0);
  const buf = c.buf!;
  const take = Math.min(chunk.length, buf.length - c.len);
  buf.set(take === chunk.length ? chunk : chunk.subarray(0, take), c.len);
  c.len += take;
  advance(c, buf, 0, c.len, take < chunk.length ? chunk : null, take);
}

/**
 * Parse what `src[off, end)` holds. `rest` (from `restOff`) is the part of the last chunk that did
 * not fit into the handshake buffer: it follows `src` on the wire.
 */
function advance(c: SocksConn, src: Uint8Array, off: number, end: number, rest: Uint8Array | null, restOff: number): void {
  const m = c.st.m;
  if (c.phase === PHASE_GREETING) {
    const g = parseGreeting(src, off, end);
    if (g.consumed === NEED_MORE) return keep(c, src, off, end, rest, restOff);
    if (g.consumed === 0) return drop(c, m.malformedGreeting, g.error);
    if (!g.noAuth) {
      // RFC 1928: X'FF', then the client closes; we close too.
      m.noMethod.value++;
      c.st.handshaking.delete(c);
      c.phase = PHASE_DONE;
      c.sock?.write(SELECT_NONE_ACCEPTABLE);
      c.sock?.end();
      return;
    }
    c.sock?.write(SELECT_NO_AUTH);
    c.phase = PHASE_REQUEST;
    off += g.consumed;
  }
  const r = parseRequest(src, off, end);
  if (r.consumed === NEED_MORE) return keep(c, src, off, end, rest, restOff);
  if (r.request === null) return drop(c, m.malformedRequest, r.error);
  off += r.consumed;
  // Bytes the client sent right behind its request are its first payload (kept, not copied:
  // the buffer is never written again once the handshake is over).
  const lead = off < end ? src.subarray(off, end) : null;
  const tail = rest !== null && restOff < rest.length ? rest.subarray(restOff) : null;
  c.buf = null;
  c.len = 0;
  connect(c, r.request, lead, tail);
}

function keep(c: SocksConn, src: Uint8Array, off: number, end: number, rest: Uint8Array | null, restOff: number): void {
  if (src === c.buf) {
    if (off > 0) src.copyWithin(0, off, end);
  } else {
    c.buf ??= new Uint8Array(HANDSHAKE_BUFFER_BYTES);
    c.buf.set(off === 0 && end === src.length ? src : src.subarray(off, end), 0);
  }
  c.len = end - off;
  // Cannot happen with a buffer that holds both messages at their longest; handled anyway.
  if (rest !== null && restOff < rest.length) onHandshakeBytes(c, rest.subarray(restOff));
}

function drop(c: SocksConn, counter: Counter, why: string): void {
  counter.value++;
  c.st.handshaking.delete(c);
  c.phase = PHASE_DONE;
  c.st.o.log.debug("socks5 client dropped", { why, client: c.sock?.remoteAddress });
  c.sock?.terminate();
}

function refuse(c: SocksConn, code: number, why: string, req: SocksRequest): void {
  c.st.m.replies[code]!.value++;
  c.phase = PHASE_DONE;
  c.st.o.log.debug("socks5 request refused", { reply: REPLY_NAMES[code], why, port: req.port });
  c.sock?.write(reply(code));
  c.sock?.end();
}

function connect(c: SocksConn, req: SocksRequest, lead: Uint8Array | null, tail: Uint8Array | null): void {
  const st = c.st;
  st.handshaking.delete(c);
  const plan = decide(req, st.o.nodes(), st.o.nodeName);
  if (plan.kind === "refuse") return refuse(c, plan.code, plan.reason, req);
  c.phase = PHASE_PROXIED;
  c.target = `${plan.node} ${plan.ip}:${plan.port}`;
  c.startedAt = performance.now();
  const sink = st.o.proxy.spliceTo(plan.local ? "" : plan.node, plan.ip, plan.port, c, (ok, error) => onResult(c, ok, error));
  if (sink === null) return refuse(c, REP_GENERAL_FAILURE, "agent at its connection cap", req);
  c.sink = sink;
  if (lead !== null) sink.data(lead);
  if (tail !== null) sink.data(tail);
}

/** The dial finished: the reply goes out before any byte from the target (the splice calls
 * this before it resumes either side). */
function onResult(c: SocksConn, ok: boolean, error: Error | null): void {
  const code = ok ? REP_SUCCEEDED : replyForDialError(error);
  c.st.m.replies[code]!.value++;
  if (ok) c.st.m.connectSeconds.observe((performance.now() - c.startedAt) / 1000);
  else {
    c.replied = true;
    c.st.o.log.debug("socks5 connect failed", { target: c.target, reply: REPLY_NAMES[code], error: error?.message ?? "" });
  }
  c.sock?.write(reply(code));
}
