// The TCP splice with the zero-copy engine: which connections are handed over (elephant flows
// only), and that an adopted pair still behaves like a proxied connection: half-close, drain,
// stop (its descriptors freed), caps and byte counters.

import { afterAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { createZeroCopyEngine, zeroCopyFdBudget } from "../../src/hotpath/zerocopy/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";
import { echoServer, openFds, push, randomBytes, runCleanups, settledFds, startProxy, until, type Harness, type Pusher } from "./proxy-support.ts";

const MiB = 1024 * 1024;

const cleanups: (() => void)[] = [];
afterAll(() => runCleanups(cleanups));

/** A proxy with its own engine, its worker started (the agent starts it on the first hand-over). */
async function harness(specs: Parameters<typeof startProxy>[0], extra: Parameters<typeof startProxy>[1] = {}): Promise<Harness & { zc: MetricsRegistry }> {
  const zc = createMetrics();
  const engine = createZeroCopyEngine({ maxPairs: 16, log: createMemoryLogger(), metrics: zc });
  expect(await engine.start()).toBe(true);
  const h = startProxy(specs, { zeroCopy: engine, ...extra });
  cleanups.push(() => h.proxy.stop());
  return { ...h, zc };
}

const adopted = (h: { zc: MetricsRegistry }) => h.zc.snapshot()["zerocopy_adopted_total"] ?? 0;

/** Stops `x` (a listener or server) after all tests. */
function track<T extends { stop(force?: boolean): void }>(x: T): T {
  cleanups.push(() => x.stop(true));
  return x;
}



const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

describe("TCP splice with the zero-copy engine", () => {
  test("a 100 MB echo is adopted, arrives intact (sha256) and is counted in the byte counters", async () => {
    const echo = track(echoServer());
    const h = await harness([{ name: "bulk", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("bulk");
    const data = randomBytes(100 * MiB);
    const p = await push(port, data, true);
    await p.echoed;
    expect(p.received()).toBe(data.length);
    expect(p.hash()).toBe(sha256(data));
    expect(adopted(h)).toBeGreaterThanOrEqual(1);
    p.socket.end();
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "the pair to finish");
    const m = h.metrics.snapshot();
    // Bytes before the hand-over counted by JS, after it reported by the engine: all of them.
    expect(m['proxy_tcp_bytes_total{direction="to_endpoint"}']).toBe(data.length);
    expect(m['proxy_tcp_bytes_total{direction="to_client"}']).toBe(data.length);
    expect(m["proxy_tcp_resets_total"] ?? 0).toBe(0);
    expect(h.zc.snapshot()["zerocopy_done_total"]).toBe(1);
  }, 60_000);

  test("a short HTTP request is not adopted", async () => {
    const server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req) => new Response(`got ${(await req.text()).length}`) });
    cleanups.push(() => server.stop(true));
    const h = await harness([{ name: "http", endpoints: [{ port: server.port! }] }]);
    const { port } = await h.addr("http");
    for (let i = 0; i < 5; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: "x".repeat(4096) });
      expect(await r.text()).toBe("got 4096");
    }
    expect(adopted(h)).toBe(0);
    expect(h.proxy.stats().tcpAccepted).toBeGreaterThanOrEqual(1);
  });

  test("half-close after adoption: the server's reply sent after the client's FIN arrives", async () => {
    // Reads until FIN, then answers with the byte count and its sha256, then closes.
    const server = Bun.listen<{ n: number; h: Bun.CryptoHasher }>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      data: null as never,
      socket: {
        binaryType: "uint8array",
        open(s) {
          s.data = { n: 0, h: new Bun.CryptoHasher("sha256") };
        },
        data(s, b) {
          s.data.n += b.length;
          s.data.h.update(b);
        },
        end(s) {
          s.write(`${s.data.n} ${s.data.h.digest("hex")}`);
          s.end();
        },
      },
    });
    cleanups.push(() => server.stop(true));
    const h = await harness([{ name: "half", endpoints: [{ port: server.port }] }]);
    const { port } = await h.addr("half");
    const data = randomBytes(8 * MiB);
    let text = "";
    let off = 0;
    let closedWith!: (e: Error | undefined) => void;
    const closed = new Promise<Error | undefined>((r) => (closedWith = r));
    const pump = (s: Socket<undefined>) => {
      while (off < data.length) {
        const len = Math.min(MiB, data.length - off);
        const n = s.write(data, off, len);
        if (n > 0) off += n;
        if (n < len) return; // drain follows
      }
      s.shutdown();
    };
    await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        open: pump,
        drain: pump,
        data(_s, b) {
          text += b.toString();
        },
        close(_s, err) {
          closedWith(err);
        },
      },
    });
    expect(await closed).toBeUndefined();
    expect(text).toBe(`${data.length} ${sha256(data)}`);
    expect(adopted(h)).toBe(1);
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "the pair to finish");
    expect(h.zc.snapshot()["zerocopy_resets_total"] ?? 0).toBe(0);
  }, 30_000);

  test("drain waits for an adopted pair, which finishes its transfer", async () => {
    const echo = track(echoServer());
    const h = await harness([{ name: "drain", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("drain");
    const data = randomBytes(4 * MiB);
    // No FIN yet: the pair stays open (adopted) until we end it during the drain.
    const p = await push(port, data, false);
    await p.echoed;
    await until(() => adopted(h) === 1, 5000, "adoption");
    const drained = h.proxy.drain(3000);
    await Bun.sleep(50);
    expect(h.proxy.listeners().size).toBe(0);
    expect(h.proxy.stats().activeTcp).toBe(1);
    // Still moving bytes: a second round trip through the engine.
    p.socket.write("more");
    await until(() => p.received() === data.length + 4, 5000, "bytes after drain began");
    const t0 = Date.now();
    p.socket.shutdown();
    await drained;
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(await p.closed).toBeUndefined();
    expect(h.proxy.stats().activeTcp).toBe(0);
    expect(h.zc.snapshot()["zerocopy_done_total"]).toBe(1);
    expect(h.zc.snapshot()["zerocopy_resets_total"] ?? 0).toBe(0);
  }, 30_000);

  test("stop resets adopted pairs and frees their descriptors", async () => {
    const echo = track(echoServer());
    const base = await settledFds();
    const h = await harness([{ name: "stop", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("stop");
    const data = randomBytes(2 * MiB);
    const pairs: Pusher[] = [];
    for (let i = 0; i < 3; i++) pairs.push(await push(port, data, false));
    for (const p of pairs) await p.echoed;
    await until(() => adopted(h) === 3, 5000, "3 adoptions");
    expect(h.proxy.stats().activeTcp).toBe(3);
    // Each adopted pair: 2 sockets + 2 pipes in the engine, plus 2 client + 2 echo sockets here.
    expect(openFds()).toBeGreaterThanOrEqual(base + 3 * 8);
    h.proxy.stop();
    for (const p of pairs) expect(await p.closed).toBeDefined(); // reset, not a clean FIN
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "release after stop");
    expect(h.zc.snapshot()["zerocopy_resets_total"]).toBe(3);
    expect(h.metrics.snapshot()["proxy_tcp_resets_total"]).toBe(3);
    expect(await settledFds()).toBeLessThanOrEqual(base);
  }, 30_000);

  test("the per-port cap counts adopted pairs", async () => {
    const echo = track(echoServer());
    const h = await harness([{ name: "capped", endpoints: [{ port: echo.port }] }], { maxConnectionsPerPort: 2 });
    const { port } = await h.addr("capped");
    const data = randomBytes(2 * MiB);
    const held = [await push(port, data, false), await push(port, data, false)];
    for (const p of held) await p.echoed;
    await until(() => adopted(h) === 2, 5000, "2 adoptions");
    const over = await push(port, new Uint8Array(1), false);
    await over.closed;
    expect(over.received()).toBe(0);
    expect(h.metrics.snapshot()['proxy_tcp_refused_total{reason="limit"}']).toBe(1);
    held[0]!.socket.shutdown();
    expect(await held[0]!.closed).toBeUndefined();
    await until(() => h.proxy.stats().activeTcp === 1, 5000, "one slot freed");
    const again = await push(port, new Uint8Array([7, 7]), false);
    await again.echoed;
    expect(again.received()).toBe(2);
    again.socket.end();
    held[1]!.socket.shutdown();
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "all closed");
  }, 30_000);

  test("the fd budget keeps connections and adopted pairs within the soft limit", () => {
    for (const soft of [1024, 4096, 65536, 1_048_576]) {
      const { maxConnections, maxPairs } = zeroCopyFdBudget(soft, 512, 2);
      expect(maxConnections * 2 + maxPairs * 4 + 512).toBeLessThanOrEqual(soft);
      expect(maxPairs).toBe(Math.min(1024, Math.floor(Math.floor((soft - 512) / 2) / 8)));
    }
    // A configured cap is kept; the pairs get what is left.
    expect(zeroCopyFdBudget(65536, 512, 2, 30_000)).toEqual({ maxConnections: 30_000, maxPairs: 1024 });
    expect(zeroCopyFdBudget(4096, 512, 2, 1790)).toEqual({ maxConnections: 1790, maxPairs: 1 });
    expect(zeroCopyFdBudget(4096, 512, 2, 1792).maxPairs).toBe(0);
  });
});
