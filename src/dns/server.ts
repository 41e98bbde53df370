// Sockets around DnsCore: one UDP socket and one TCP listener on the same port. Handlers are
// created once; per-connection TCP state lives in socket.data. Nothing escapes a handler.
import type { DnsCore } from "./core.ts";
import { TCP_LIMIT } from "./core.ts";
import type { Waiter } from "./forward.ts";

/** UDP replies never exceed this (UDP_MAX_REPLY plus slack for the question and OPT). */
const UDP_OUT_BYTES = 4096 + 512;
/** Replies queued before a sendMany; at most this many slots of UDP_OUT_BYTES stay allocated. */
const UDP_BATCH = 128;
/** Idle TCP connections are closed after this long (RFC 7766 suggests seconds, not minutes). */
const TCP_IDLE_S = 10;
/** Open TCP connections beyond this are closed at once: a flood must not exhaust memory. */
export const MAX_TCP_CONNECTIONS = 1000;
/** Unprocessed TCP input per connection (many pipelined queries in one read fit easily). */
const MAX_TCP_INPUT_BYTES = 256 * 1024;
/** A client that does not read its answers is dropped once this much output waits for it. */
const MAX_TCP_PENDING_BYTES = 1 << 20;

export class TcpConn {
  buf = new Uint8Array(512);
  len = 0;
  /** Bytes a short write left behind; further replies queue behind them until drain. */
  pending: Uint8Array | null = null;
  constructor(readonly socket: Bun.Socket<TcpConn>) {}
}

export class DnsSockets {
  readonly #core: DnsCore;
  /** One reply slot per queued UDP reply; replies are written in place and sent in batches. */
  readonly #slots: Uint8Array[] = [];
  /** Views of each slot by reply length, made once each, so queuing a reply does not allocate. */
  readonly #views: (Uint8Array | undefined)[][] = [];
  /** sendMany arguments: data, port, address per queued reply. */
  readonly #batch: (Uint8Array | number | string)[] = new Array(UDP_BATCH * 3);
  #queued = 0;
  #sock: Bun.udp.Socket<"uint8array"> | null = null;
  readonly #flush = () => this.#flushUdp();
  readonly #tcpOut = new Uint8Array(TCP_LIMIT + 2 + 512);
  readonly #tcpBody = this.#tcpOut.subarray(2);
  #udp: Bun.udp.Socket<"uint8array"> | null = null;
  #tcp: Bun.TCPSocketListener<TcpConn> | null = null;
  #tcpOpen = 0;
  readonly #maxTcp: number;

  constructor(core: DnsCore, maxTcpConnections = MAX_TCP_CONNECTIONS) {
    this.#core = core;
    this.#maxTcp = maxTcpConnections;
    const arena = new Uint8Array(UDP_BATCH * UDP_OUT_BYTES);
    for (let i = 0; i < UDP_BATCH; i++) {
      this.#slots.push(arena.subarray(i * UDP_OUT_BYTES, (i + 1) * UDP_OUT_BYTES));
      this.#views.push(new Array(UDP_OUT_BYTES + 1));
    }
  }

  async start(host: string, port: number, tcp: boolean): Promise<{ udpPort: number; tcpPort: number }> {
    const self = this;
    const udpHandler = {
      data(sock: Bun.udp.Socket<"uint8array">, buf: Uint8Array, rport: number, addr: string) {
        self.#onUdp(sock, buf, rport, addr);
      },
      // ICMP port unreachable from a client that left before its answer: nothing to do.
      error() {
        self.#core.c.sendErrors.value++;
      },
    };
    // Port 0: the kernel picks the UDP port, TCP must then get the same one; retry if taken.
    for (let attempt = 0; ; attempt++) {
      this.#udp = await Bun.udpSocket({ hostname: host, port, binaryType: "uint8array", socket: udpHandler });
      if (!tcp) return { udpPort: this.#udp.port, tcpPort: 0 };
      try {
        this.#tcp = Bun.listen<TcpConn>({ hostname: host, port: this.#udp.port, socket: this.#tcpHandler() });
        return { udpPort: this.#udp.port, tcpPort: this.#tcp.port };
      } catch (err) {
        this.#udp.close();
        if (port !== 0 || attempt >= 5) throw new Error(`DNS TCP listen on ${host}:${port} failed: ${(err as Error).message}`, { cause: err });
      }
    }
  }

  stop(): void {
    this.#flushUdp();
    this.#udp?.close();
    this.#tcp?.stop(true);
    this.#udp = null;
    this.#tcp = null;
  }

  /** Forwarded replies arrive here, from the forwarder's own buffer. */
  deliver(w: Waiter, buf: Uint8Array, len: number): void {
    if (w.conn instanceof TcpConn) {
      const framed = new Uint8Array(len + 2);
      framed[0] = len >>> 8;
      framed[1] = len & 0xff;
      framed.set(buf.subarray(0, len), 2);
      this.#write(w.conn, framed);
    } else {
      this.#udp?.send(buf.subarray(0, len), w.port, w.address);
    }
  }

  // Bun reads datagrams in batches (recvmmsg) and calls us once per datagram; replies are queued
  // and sent together with sendMany (one sendmmsg) right after the batch, via setImmediate.
  // That halves the syscalls per query, the dominant cost at load.
  #onUdp(sock: Bun.udp.Socket<"uint8array">, buf: Uint8Array, port: number, addr: string): void {
    try {
      const i = this.#queued;
      const n = this.#core.handle(buf, buf.length, this.#slots[i]!, null, port, addr);
      if (n === 0) return;
      const views = this.#views[i]!;
      let view = views[n];
      if (view === undefined) views[n] = view = this.#slots[i]!.subarray(0, n);
      const b = this.#batch;
      b[i * 3] = view;
      b[i * 3 + 1] = port;
      b[i * 3 + 2] = addr;
      this.#sock = sock;
      this.#queued = i + 1;
      if (i === 0) setImmediate(this.#flush);
      else if (i + 1 === UDP_BATCH) this.#flushUdp();
    } catch {
      this.#core.c.errors.value++;
    }
  }

  #flushUdp(): void {
    const n = this.#queued;
    if (n === 0 || this.#sock === null) return;
    this.#queued = 0;
    try {
      const sent = this.#sock.sendMany(n === UDP_BATCH ? this.#batch : this.#batch.slice(0, n * 3));
      if (sent < n) this.#core.c.sendErrors.value += n - sent;
    } catch {
      this.#core.c.sendErrors.value++;
    }
  }

  #onTcpData(conn: TcpConn, chunk: Uint8Array): void {
    if (conn.len + chunk.length > conn.buf.length) {
      // Pipelined queries may arrive as one big chunk; a client sending more than this unanswered
      // is not a resolver.
      if (conn.len + chunk.length > MAX_TCP_INPUT_BYTES) return void conn.socket.end();
      const grown = new Uint8Array(Math.min(MAX_TCP_INPUT_BYTES, Math.max(conn.buf.length * 2, conn.len + chunk.length)));
      grown.set(conn.buf.subarray(0, conn.len));
      conn.buf = grown;
    }
    conn.buf.set(chunk, conn.len);
    conn.len += chunk.length;
    let off = 0;
    while (conn.len - off >= 2) {
      const msgLen = (conn.buf[off]! << 8) | conn.buf[off + 1]!;
      if (conn.len - off < msgLen + 2) break;
      const n = this.#core.handle(conn.buf.subarray(off + 2, off + 2 + msgLen), msgLen, this.#tcpBody, conn, 0, "");
      if (n > 0) {
        this.#tcpOut[0] = n >>> 8;
        this.#tcpOut[1] = n & 0xff;
        this.#write(conn, this.#tcpOut.subarray(0, n + 2));
      }
      off += msgLen + 2;
    }
    if (off > 0) {
      conn.buf.copyWithin(0, off, conn.len);
      conn.len -= off;
    }
  }

  #write(conn: TcpConn, data: Uint8Array): void {
    if (conn.pending !== null) {
      if (conn.pending.length + data.length > MAX_TCP_PENDING_BYTES) return void conn.socket.end();
      const joined = new Uint8Array(conn.pending.length + data.length);
      joined.set(conn.pending);
      joined.set(data, conn.pending.length);
      conn.pending = joined;
      return;
    }
    const written = conn.socket.write(data);
    if (written < data.length) conn.pending = data.slice(Math.max(0, written));
  }

  #tcpHandler(): Bun.SocketHandler<TcpConn> {
    const self = this;
    return {
      open(s) {
        s.data = new TcpConn(s);
        if (++self.#tcpOpen > self.#maxTcp) {
          self.#core.c.tcpRejected.value++;
          return void s.end();
        }
        s.timeout(TCP_IDLE_S);
      },
      close() {
        self.#tcpOpen--;
      },
      data(s, chunk) {
        try {
          self.#onTcpData(s.data, chunk);
        } catch {
          self.#core.c.errors.value++;
          s.end();
        }
      },
      drain(s) {
        const p = s.data.pending;
        if (p === null) return;
        s.data.pending = null;
        self.#write(s.data, p);
      },
      timeout(s) {
        s.end();
      },
      error() {
        self.#core.c.sendErrors.value++;
      },
    };
  }
}
