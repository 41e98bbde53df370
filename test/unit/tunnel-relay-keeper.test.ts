// The relay keeper's reconnect decisions with a stand-in libp2p on the manual clock: a relay left
// silent stays blocked until a dial to it gets through (not for a fixed time), reconnects dial
// the relay's plain configured addresses (never the peer store's, never through the gater's
// block), and one reconnect per relay is in flight at a time. Issue 11 §3.

import { describe, expect, test } from "bun:test";
import { peerIdFromString } from "@libp2p/peer-id";
import { multiaddr, type Multiaddr } from "@multiformats/multiaddr";
import type { Libp2p } from "libp2p";
import { createManualClock } from "../../src/control/clock.ts";
import { createLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { PeerBook } from "../../src/tunnel/peers.ts";
import { RelayKeeper } from "../../src/tunnel/relay-keeper.ts";
import { QUARANTINE_BASE_MS, RELAY_PROBE_BACKOFF_MAX_MS, RELAY_PROBE_INTERVAL_MS, RELAY_PROBE_MISSES } from "../../src/tunnel/relay-liveness.ts";

interface FakeConn {
  id: string;
  status: "open" | "closed";
  remoteAddr: Multiaddr;
  remotePeer: ReturnType<typeof peerIdFromString>;
  muxer: { ping(): Promise<number> };
  aborted: boolean;
  abort(err?: Error): void;
  close(): Promise<void>;
}

interface Dial {
  addrs: string[];
  resolve(peerId: string): void;
  reject(err: Error): void;
}

/** libp2p as the keeper uses it: connections per peer, dials the test answers one by one. */
function fakeLibp2p() {
  const conns: FakeConn[] = [];
  const dials: Dial[] = [];
  /** The relay answers pings (false: its link died silently). */
  const state = { alive: true, n: 0 };
  const connect = (peerId: string, addr: string): FakeConn => {
    const c: FakeConn = {
      id: `c${++state.n}`,
      status: "open",
      remoteAddr: multiaddr(addr),
      remotePeer: peerIdFromString(peerId),
      muxer: { ping: () => (state.alive ? Promise.resolve(1) : new Promise(() => {})) },
      aborted: false,
      abort() {
        c.aborted = true;
        c.status = "closed";
        conns.splice(conns.indexOf(c), 1);
      },
      async close() {
        c.abort();
      },
    };
    conns.push(c);
    return c;
  };
  const lp = {
    getConnections: (peer?: { toString(): string }) => (peer ? conns.filter((c) => c.remotePeer.toString() === peer.toString()) : [...conns]),
    dial(addrs: Multiaddr[]): Promise<FakeConn> {
      return new Promise((res, rej) => {
        const list = addrs.map(String);
        dials.push({ addrs: list, resolve: (peerId) => res(connect(peerId, list[0]!)), reject: rej });
      });
    },
    getMultiaddrs: () => [],
    addEventListener() {},
    removeEventListener() {},
  };
  return { lp: lp as unknown as Libp2p, conns, dials, state, connect };
}

async function setup() {
  const clock = createManualClock(1_000_000);
  const book = new PeerBook(true, 20006, "tcp");
  await book.setRelays([{ nodeName: "relay1", advertiseAddress: ["10.0.0.5"] }]);
  const relayId = book.relays[0]!.peerId!;
  const f = fakeLibp2p();
  const lines: string[] = [];
  const metrics = createMetrics();
  const keeper = new RelayKeeper({
    libp2p: f.lp,
    book,
    nodeName: "n1",
    selfPeerId: "12D3KooWSelfSelfSelfSelfSelfSelfSelfSelfSelfSelfSelf",
    log: createLogger({ level: "debug", format: "text", write: (l) => lines.push(l) }),
    metrics,
    clock,
  });
  /** Advance in steps, letting dial and ping promises settle between them. */
  const run = async (ms: number, step = 50) => {
    for (let t = 0; t < ms; t += step) {
      clock.advance(step);
      for (let i = 0; i < 5; i++) await Promise.resolve();
    }
  };
  return { clock, book, relayId, keeper, lines, metrics, run, ...f };
}

/** Start connected to relay1, then let its link die silently until the keeper drops it. */
async function leftSilent() {
  const s = await setup();
  s.keeper.start();
  await s.run(100);
  expect(s.dials.length).toBe(1);
  s.dials.shift()!.resolve(s.relayId);
  await s.run(1000);
  expect(s.conns.length).toBe(1);
  s.state.alive = false;
  const cutAt = s.clock.now();
  while (s.conns.length > 0 && s.clock.now() - cutAt < 5000) await s.run(50, 50);
  expect(s.conns.length).toBe(0); // dropped as silent
  expect(s.clock.now() - cutAt).toBeLessThanOrEqual((RELAY_PROBE_MISSES + 1) * RELAY_PROBE_INTERVAL_MS + 100);
  expect(s.lines.some((l) => l.includes("relay silent"))).toBe(true);
  return { ...s, silentAt: s.clock.now() };
}

describe("relay keeper: leaving a silent relay and coming back", () => {
  test("a relay left silent stays blocked until a dial to it succeeds, not for a fixed time", async () => {
    const s = await leftSilent();
    expect(s.keeper.isBlocked(s.relayId)).toBe(true);
    expect(s.dials.length).toBe(0);
    // Well past the quarantine and any fixed block: still unreachable, still blocked.
    for (let i = 0; i < 12; i++) {
      await s.run(RELAY_PROBE_BACKOFF_MAX_MS + 1000);
      for (const d of s.dials.splice(0)) d.reject(new Error("connect ETIMEDOUT"));
      await s.run(50);
      expect(s.keeper.isBlocked(s.relayId)).toBe(true);
    }
    expect(s.metrics.sum("tunnel_relays_blocked")).toBe(1);
    // Back: the next probe gets through and unblocks it.
    s.state.alive = true;
    await s.run(RELAY_PROBE_BACKOFF_MAX_MS + 1000);
    expect(s.dials.length).toBe(1);
    s.dials.shift()!.resolve(s.relayId);
    await s.run(50);
    expect(s.keeper.isBlocked(s.relayId)).toBe(false);
    expect(s.metrics.sum("tunnel_relays_blocked")).toBe(0);
    expect(s.lines.some((l) => l.includes("relay reachable again") && l.includes("blockedForMs="))).toBe(true);
    s.keeper.stop();
  });

  test("no probe before the quarantine; probes back off to one every 10 s while it stays down", async () => {
    const s = await leftSilent();
    const { silentAt } = s;
    const dialAt: number[] = [];
    while (s.clock.now() - silentAt < 90_000) {
      await s.run(100);
      for (const d of s.dials.splice(0)) {
        dialAt.push(s.clock.now() - silentAt);
        d.reject(new Error("connect EHOSTUNREACH"));
      }
    }
    expect(dialAt[0]).toBeGreaterThanOrEqual(QUARANTINE_BASE_MS);
    expect(dialAt[0]).toBeLessThan(QUARANTINE_BASE_MS + 1200);
    const gaps = dialAt.slice(1).map((t, i) => t - dialAt[i]!);
    expect(gaps.every((g) => g <= RELAY_PROBE_BACKOFF_MAX_MS + 1100)).toBe(true);
    expect(gaps.at(-1)!).toBeGreaterThanOrEqual(RELAY_PROBE_BACKOFF_MAX_MS);
    // Logged on the 1st, 2nd, 4th, 8th failed probe, not on every one.
    const logged = s.lines.filter((l) => l.includes("relay still unreachable")).length;
    expect(dialAt.length).toBeGreaterThan(8);
    expect(logged).toBe(Math.floor(Math.log2(dialAt.length)) + 1);
    s.keeper.stop();
  });

  test("reconnects dial the relay's configured addresses, bare: no peer ID, no peer-store addresses", async () => {
    const s = await leftSilent();
    await s.run(QUARANTINE_BASE_MS + 1100);
    expect(s.dials.map((d) => d.addrs)).toEqual([["/ip4/10.0.0.5/tcp/20006"]]);
    s.keeper.stop();
  });

  test("one reconnect per relay in flight: a hanging dial is not joined by another", async () => {
    const s = await leftSilent();
    await s.run(QUARANTINE_BASE_MS + 1100);
    expect(s.dials.length).toBe(1);
    await s.run(20_000); // ticks every second, the dial still pending
    for (let i = 0; i < 5; i++) await s.keeper.check().catch(() => {}); // explicit checks too (setRelayNodes)
    expect(s.dials.length).toBe(1);
    s.dials.shift()!.reject(new Error("timed out"));
    await s.run(RELAY_PROBE_BACKOFF_MAX_MS + 1100);
    expect(s.dials.length).toBe(1);
    s.keeper.stop();
  });

  test("an address that answers with another peer ID is not the relay: closed, still blocked", async () => {
    const s = await leftSilent();
    await s.run(QUARANTINE_BASE_MS + 1100);
    s.dials.shift()!.resolve("12D3KooWRBhwfeP2Y4TCx1SM6s9rUoHhR5STiGwxBhgFRcw3UERE");
    await s.run(50);
    expect(s.conns.length).toBe(0);
    expect(s.keeper.isBlocked(s.relayId)).toBe(true);
    expect(s.lines.some((l) => l.includes("relay still unreachable") && l.includes("answered as"))).toBe(true);
    s.keeper.stop();
  });

  test("a relay that went away loudly (connection closed, not silent) is redialed with backoff, never blocked", async () => {
    const s = await setup();
    s.keeper.start();
    await s.run(100);
    s.dials.shift()!.resolve(s.relayId);
    await s.run(100);
    s.conns[0]!.abort(); // reset by the relay
    await s.run(1100);
    expect(s.keeper.isBlocked(s.relayId)).toBe(false);
    expect(s.dials.length).toBe(1);
    expect(s.dials[0]!.addrs).toEqual(["/ip4/10.0.0.5/tcp/20006"]);
    s.keeper.stop();
  });
});
