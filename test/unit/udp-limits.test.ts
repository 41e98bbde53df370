// The bookkeeping behind the flow and stream limits, without sockets: the LRU list flow tables
// evict from, the per-class stream budget, the once-per-key log limiter and the /peers view.
import { describe, expect, test } from "bun:test";
import { peersJson, type PeerLike } from "../../src/admin/index.ts";
import { LruList, type LruEntry } from "../../src/hotpath/lru.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { limitLogger, StreamBudget } from "../../src/tunnel/index.ts";

class E implements LruEntry {
  lruPrev: LruEntry | null = null;
  lruNext: LruEntry | null = null;
  constructor(readonly n: number) {}
}
const order = (l: LruList<E>) => {
  const out: number[] = [];
  for (let e = l.oldest; e !== null; e = e.lruNext as E | null) out.push(e.n);
  return out;
};

describe("LRU list", () => {
  test("touch moves an entry to the young end; oldest is the least recently used", () => {
    const l = new LruList<E>();
    const es = [0, 1, 2, 3].map((n) => new E(n));
    for (const e of es) l.push(e);
    l.touch(es[0]!);
    l.touch(es[2]!);
    l.touch(es[2]!);
    expect(order(l)).toEqual([1, 3, 0, 2]);
    expect(l.oldest!.n).toBe(1);
    expect(l.newest!.n).toBe(2);
  });

  test("removing from either end or the middle keeps the links and the size right", () => {
    const l = new LruList<E>();
    const es = [0, 1, 2, 3, 4].map((n) => new E(n));
    for (const e of es) l.push(e);
    l.remove(es[0]!);
    l.remove(es[4]!);
    l.remove(es[2]!);
    expect(order(l)).toEqual([1, 3]);
    expect(l.size).toBe(2);
    l.remove(es[1]!);
    l.remove(es[3]!);
    expect(l.oldest).toBeNull();
    expect(l.newest).toBeNull();
    expect(l.size).toBe(0);
    l.push(es[3]!);
    expect(order(l)).toEqual([3]);
  });
});

describe("stream budget", () => {
  test("TCP and UDP streams are counted apart: one class at its limits leaves the other untouched", () => {
    const b = new StreamBudget(4, 2);
    expect(b.take("p1", "udp")).toBeNull();
    expect(b.take("p1", "udp")).toBeNull();
    expect(b.take("p1", "udp")).toBe("peer");
    expect(b.take("p1", "tcp")).toBeNull();
    expect(b.take("p1", "tcp")).toBeNull();
    expect(b.take("p1", "tcp")).toBe("peer");
    expect(b.take("p2", "udp")).toBeNull();
    expect(b.take("p3", "udp")).toBeNull();
    expect(b.take("p4", "udp")).toBe("total");
    expect(b.take("p4", "tcp")).toBeNull();
    expect(b.of("p1")).toEqual({ tcp: 2, udp: 2 });
    expect(b.open).toEqual({ tcp: 3, udp: 4 });
  });

  test("release frees the slot; a peer with nothing open is forgotten; a stray release changes nothing", () => {
    const b = new StreamBudget(10, 1);
    b.take("p", "udp");
    expect(b.full("p", "udp")).toBe("peer");
    b.release("p", "udp");
    expect(b.full("p", "udp")).toBeNull();
    expect([...b.peers()]).toEqual([]);
    b.release("p", "udp");
    b.release("q", "tcp");
    expect(b.open).toEqual({ tcp: 0, udp: 0 });
  });
});

describe("limit lines", () => {
  test("one line per peer per minute: repeats are counted and reported with the next line", () => {
    let now = 0;
    const metrics = createMetrics();
    const l = limitLogger(createMemoryLogger(), metrics, { now: () => now });
    expect(l.admit("n2", "x")).toBe(0);
    expect(l.admit("n2", "x")).toBe(-1);
    expect(l.admit("n3", "x")).toBe(0);
    now = 59_999;
    expect(l.admit("n2", "x")).toBe(-1);
    now = 60_000;
    expect(l.admit("n2", "x")).toBe(2);
    expect(l.admit("n2", "x")).toBe(-1);
    expect(metrics.snapshot()["log_suppressed_total"]).toBe(3);
  });
});

describe("/peers view", () => {
  const peer = (open: number): PeerLike => ({
    peerId: "12D3KooWpeer",
    nodeName: "n2",
    connected: true,
    addrs: ["/ip4/10.0.0.2/tcp/20006"],
    relayed: false,
    streams: open + 1,
    limits: { tcp: { open: 1, max: 1024, agentOpen: 1, agentMax: 10240 }, udp: { open, max: 1024, agentOpen: open, agentMax: 10240 } },
  });

  test("each limit with its use, flows both ways, and the ones at 80% or more under near", () => {
    const [v] = peersJson([peer(900)], { out: (node) => ({ open: node === "n2" ? 4000 : 0, max: 4096 }), in: () => ({ open: 10, max: 4096 }) });
    expect(v!.limits).toEqual({
      tcpStreams: { open: 1, max: 1024 },
      udpStreams: { open: 900, max: 1024 },
      udpFlowsOut: { open: 4000, max: 4096 },
      udpFlowsIn: { open: 10, max: 4096 },
    });
    expect(v!.near).toEqual(["udpStreams", "udpFlowsOut"]);
    expect(v!.nodeName).toBe("n2");
  });

  test("without flow counts (no proxy) only the stream limits are shown", () => {
    const [v] = peersJson([peer(1)]);
    expect(Object.keys(v!.limits)).toEqual(["tcpStreams", "udpStreams"]);
    expect(v!.near).toEqual([]);
  });
});
