// Talking to upstream resolvers: one shared UDP socket per address family with random query IDs,
// and one short TCP connection per TCP query. Replies are accepted only from the upstream asked,
// with the ID and question we sent (a spoofed or stray datagram is counted and ignored).
import type { Counter } from "../metrics/index.ts";
import { EDNS_ADVERTISED_SIZE, HEADER_LEN, Query, readName, sameName } from "./wire.ts";

export interface Upstream {
  readonly host: string;
  readonly port: number;
}

export interface UpstreamQuery {
  readonly upstream: Upstream;
  /** Lower-cased wire name. */
  readonly name: Uint8Array;
  readonly qtype: number;
  readonly qclass: number;
  readonly timeoutMs: number;
}

/** reply null = timeout or connection failure; truncated = TC set on a UDP reply. */
export type UpstreamDone = (reply: Uint8Array | null, truncated: boolean) => void;

interface Inflight {
  readonly id: number;
  readonly q: UpstreamQuery;
  readonly done: UpstreamDone;
  timer: ReturnType<typeof setTimeout> | null;
  finished: boolean;
}

interface TcpState {
  readonly f: Inflight;
  readonly query: Uint8Array;
  buf: Uint8Array;
  len: number;
}

/** Build a recursive query with our EDNS0 size. */
export function buildQuery(id: number, name: Uint8Array, qtype: number, qclass: number): Uint8Array {
  const out = new Uint8Array(HEADER_LEN + name.length + 4 + 11);
  out.set([id >>> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1]);
  out.set(name, HEADER_LEN);
  let o = HEADER_LEN + name.length;
  out.set([qtype >>> 8, qtype & 0xff, qclass >>> 8, qclass & 0xff], o);
  o += 4;
  out.set([0, 0, 41, EDNS_ADVERTISED_SIZE >>> 8, EDNS_ADVERTISED_SIZE & 0xff, 0, 0, 0, 0, 0, 0], o);
  return out;
}

export class UpstreamIO {
  readonly #byId = new Map<number, Inflight>();
  readonly #scratch = new Query();
  readonly #stray: Counter;
  readonly #errors: Counter;
  #v4: Bun.udp.Socket<"uint8array"> | null = null;
  #v6: Bun.udp.Socket<"uint8array"> | null = null;

  constructor(counters: { stray: Counter; errors: Counter }) {
    this.#stray = counters.stray;
    this.#errors = counters.errors;
  }

  async start(): Promise<void> {
    const socket = {
      data: (_s: unknown, buf: Uint8Array, port: number, addr: string) => this.#onUdp(buf, port, addr),
      // ICMP errors (an upstream that is down) surface here; the attempt's timeout handles them.
      error: () => void this.#errors.value++,
    };
    this.#v4 = await Bun.udpSocket({ hostname: "0.0.0.0", port: 0, binaryType: "uint8array", socket });
    try {
      this.#v6 = await Bun.udpSocket({ hostname: "::", port: 0, binaryType: "uint8array", socket });
    } catch {
      this.#v6 = null; // no IPv6 on this host: IPv6 upstreams then fail over like timeouts
    }
  }

  stop(): void {
    for (const f of this.#byId.values()) this.#end(f);
    this.#byId.clear();
    this.#v4?.close();
    this.#v6?.close();
  }

  udp(q: UpstreamQuery, done: UpstreamDone): () => void {
    const f = this.#begin(q, done);
    const sock = q.upstream.host.includes(":") ? this.#v6 : this.#v4;
    const sent = sock?.send(buildQuery(f.id, q.name, q.qtype, q.qclass), q.upstream.port, q.upstream.host) ?? false;
    if (!sent) this.#complete(f, null, false);
    return () => this.#end(f);
  }

  tcp(q: UpstreamQuery, done: UpstreamDone): () => void {
    const f = this.#begin(q, done);
    const body = buildQuery(f.id, q.name, q.qtype, q.qclass);
    const query = new Uint8Array(body.length + 2);
    query[0] = body.length >>> 8;
    query[1] = body.length & 0xff;
    query.set(body, 2);
    const state: TcpState = { f, query, buf: new Uint8Array(1024), len: 0 };
    let socket: Bun.Socket<TcpState> | null = null;
    Bun.connect<TcpState>({ hostname: q.upstream.host, port: q.upstream.port, data: state, socket: TCP_HANDLER })
      .then((s) => (f.finished ? s.end() : (socket = s)))
      .catch(() => this.#complete(f, null, false));
    return () => {
      this.#end(f);
      socket?.end();
    };
  }

  /** Called by the TCP handler with a whole message. */
  tcpDone(f: Inflight, msg: Uint8Array | null): void {
    this.#complete(f, msg && this.#matches(f, msg, msg.length) ? msg : null, false);
  }

  #begin(q: UpstreamQuery, done: UpstreamDone): Inflight {
    const ids = new Uint16Array(1);
    do crypto.getRandomValues(ids);
    while (this.#byId.has(ids[0]!));
    const f: Inflight = { id: ids[0]!, q, done, timer: null, finished: false };
    f.timer = setTimeout(() => this.#complete(f, null, false), q.timeoutMs);
    this.#byId.set(f.id, f);
    tcpOwner.set(f, this);
    return f;
  }

  #end(f: Inflight): void {
    f.finished = true;
    if (f.timer) clearTimeout(f.timer);
    if (this.#byId.get(f.id) === f) this.#byId.delete(f.id);
  }

  #complete(f: Inflight, reply: Uint8Array | null, truncated: boolean): void {
    if (f.finished) return;
    this.#end(f);
    f.done(reply, truncated);
  }

  #onUdp(buf: Uint8Array, port: number, addr: string): void {
    const f = buf.length >= HEADER_LEN ? this.#byId.get((buf[0]! << 8) | buf[1]!) : undefined;
    const up = f?.q.upstream;
    if (!f || !up || port !== up.port || !sameAddress(addr, up.host) || !this.#matches(f, buf, buf.length)) {
      this.#stray.value++;
      return;
    }
    this.#complete(f, buf.slice(), (buf[2]! & 0x02) !== 0);
  }

  /** A reply to our question: QR set, our ID, the same name, type and class. */
  #matches(f: Inflight, buf: Uint8Array, len: number): boolean {
    if (len < HEADER_LEN || (buf[2]! & 0x80) === 0 || ((buf[0]! << 8) | buf[1]!) !== f.id) return false;
    if (buf[4] !== 0 || buf[5] !== 1) return false;
    const s = this.#scratch;
    const end = readName(buf, len, HEADER_LEN, s);
    if (end < 0 || end + 4 > len || !sameName(s, f.q.name)) return false;
    return ((buf[end]! << 8) | buf[end + 1]!) === f.q.qtype && ((buf[end + 2]! << 8) | buf[end + 3]!) === f.q.qclass;
  }
}

function sameAddress(a: string, b: string): boolean {
  return a === b || a === `::ffff:${b}`;
}

/** Which UpstreamIO a TCP inflight belongs to (the handler below is shared by all). */
const tcpOwner = new WeakMap<Inflight, UpstreamIO>();

const TCP_HANDLER: Bun.SocketHandler<TcpState> = {
  open(s) {
    s.write(s.data.query);
  },
  data(s, chunk) {
    const st = s.data;
    if (st.len + chunk.length > st.buf.length) {
      const grown = new Uint8Array(Math.max(st.buf.length * 2, st.len + chunk.length));
      grown.set(st.buf.subarray(0, st.len));
      st.buf = grown;
    }
    st.buf.set(chunk, st.len);
    st.len += chunk.length;
    if (st.len < 2) return;
    const need = ((st.buf[0]! << 8) | st.buf[1]!) + 2;
    if (st.len < need) return;
    tcpOwner.get(st.f)?.tcpDone(st.f, st.buf.slice(2, need));
    s.end();
  },
  close(s) {
    tcpOwner.get(s.data.f)?.tcpDone(s.data.f, null);
  },
  error(s) {
    tcpOwner.get(s.data.f)?.tcpDone(s.data.f, null);
  },
};
