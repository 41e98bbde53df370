// The proxy with the C flow loop (zerocopy/native): a connection from a service listener is
// handed over after its first exchange (the client writes again after the upstream answered),
// and from then on every byte moves in C (recv/send, splice(2) once a
// direction is bulk or backpressured). An adopted pair must still behave like a proxied
// connection: bytes intact, half-close, resets passed on, byte counters, a full pair table
// leaving connections in JS, stop. And a loop that cannot be compiled must not stop the agent.

import { afterAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compileNativeLoop, createZeroCopyEngine, createZeroCopyIfSupported } from "../../src/hotpath/zerocopy/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";
import { echoServer, push, randomBytes, runCleanups, settledFds, startProxy, until, type Harness } from "./proxy-support.ts";

const MiB = 1024 * 1024;
const cleanups: (() => void)[] = [];
afterAll(() => runCleanups(cleanups));

/** A proxy with its own C-loop engine, its worker started (the agent starts it on the first
 * hand-over: see "the worker starts on the first hand-over" below). */
async function harness(specs: Parameters<typeof startProxy>[0], maxPairs = 16): Promise<Harness & { zc: MetricsRegistry }> {
  const zc = createMetrics();
  const engine = createZeroCopyEngine({ maxPairs, log: createMemoryLogger(), metrics: zc, native: { loop: compileNativeLoop(), maxPiped: 8 } });
  expect(await engine.start()).toBe(true);
  const h = startProxy(specs, { zeroCopy: engine });
  cleanups.push(() => h.proxy.stop());
  return { ...h, zc };
}

const zcCount = (h: { zc: MetricsRegistry }, name: string) => h.zc.snapshot()[`zerocopy_${name}_total`] ?? 0;
const sha256 = (b: Uint8Array) => new Bun.CryptoHasher("sha256").update(b).digest("hex");

function track<T extends { stop(force?: boolean): void }>(x: T): T {
  cleanups.push(() => x.stop(true));
  return x;
}

interface Client {
  socket: Socket<undefined>;
  received: () => number;
  hash: () => string;
  ended: () => boolean;
  closed: Promise<Error | undefined>;
}

async function connect(port: number): Promise<Client> {
  const hasher = new Bun.CryptoHasher("sha256");
  let received = 0;
  let ended = false;
  let closedWith!: (e: Error | undefined) => void;
  const closed = new Promise<Error | undefined>((r) => (closedWith = r));
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      data(_s, b) {
        hasher.update(b);
        received += b.length;
      },
      end() {
        ended = true;
      },
      close(_s, err) {
        closedWith(err);
      },
    },
  });
  return { socket, received: () => received, hash: () => hasher.digest("hex"), ended: () => ended, closed };
}

/** Two echoed messages: the second is written after an answer, so the connection is handed over. */
async function exchangeTwice(c: Client): Promise<void> {
  const start = c.received();
  c.socket.write("ping");
  await until(() => c.received() === start + 4, 5000, "the first echo");
  c.socket.write("pong");
  await until(() => c.received() === start + 8, 5000, "the second echo");
}

describe("TCP proxy with the C flow loop", () => {
  test("a one-shot exchange (request, answer, close) stays in JS", async () => {
    const echo = track(echoServer());
    const h = await harness([{ name: "once", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("once");
    for (let i = 0; i < 3; i++) {
      const c = await connect(port);
      c.socket.write("one request");
      await until(() => c.received() === 11, 5000, "the answer");
      c.socket.shutdown();
      expect(await c.closed).toBeUndefined();
    }
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "the connections to finish");
    expect(zcCount(h, "adopted")).toBe(0);
    expect(h.metrics.snapshot()['proxy_tcp_bytes_total{direction="to_client"}']).toBe(33);
  });

  test("the worker starts on the first hand-over, not with the engine; a connection asking while it starts stays in JS and is adopted on a later write", async () => {
    const echo = track(echoServer());
    const zc = createMetrics();
    const engine = createZeroCopyEngine({ maxPairs: 16, log: createMemoryLogger(), metrics: zc, native: { loop: compileNativeLoop(), maxPiped: 8 } });
    const h = { ...startProxy([{ name: "lazy", endpoints: [{ port: echo.port }] }], { zeroCopy: engine }), zc };
    cleanups.push(() => h.proxy.stop());
    const { port } = await h.addr("lazy");
    // A one-shot connection asks for no hand-over: still no worker.
    const once = await connect(port);
    once.socket.write("one request");
    await until(() => once.received() === 11, 5000, "the answer");
    once.socket.shutdown();
    expect(await once.closed).toBeUndefined();
    expect(engine.ready).toBe(false);
    expect(engine.starting).toBe(true);
    expect(zcCount(h, "deferred")).toBe(0);
    // A keep-alive connection: its second write asks for the hand-over, which starts the worker;
    // meanwhile the connection stays in JS (the echo arrives, nothing waits for the worker).
    const c = await connect(port);
    await exchangeTwice(c);
    expect(zcCount(h, "deferred")).toBe(1);
    expect(zcCount(h, "adopted")).toBe(0);
    await until(() => engine.ready, 5000, "the worker to be up");
    // Its next write after an answer is handed over, and the loop carries the rest.
    c.socket.write("third");
    await until(() => c.received() === 13, 5000, "the third echo");
    expect(zcCount(h, "adopted")).toBe(1);
    expect(zc.snapshot()["zerocopy_active_pairs"]).toBe(1);
    c.socket.write("and a fourth");
    await until(() => c.received() === 25, 5000, "the fourth echo, through the loop");
    expect(c.hash()).toBe(new Bun.CryptoHasher("sha256").update("pingpongthirdand a fourth").digest("hex"));
    c.socket.shutdown();
    expect(await c.closed).toBeUndefined();
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "the pair to finish");
    expect(zcCount(h, "done")).toBe(1);
    expect(zcCount(h, "resets")).toBe(0);
  });

  test("a keep-alive connection is adopted after its first exchange; 1500 small messages round-trip intact, then 4000 pipelined", async () => {
    const echo = track(echoServer());
    const h = await harness([{ name: "small", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("small");
    const c = await connect(port);
    const sent = new Bun.CryptoHasher("sha256");
    let total = 0;
    let viaJs = 0; // message 0 both ways and message 1 toward the server moved before the hand-over
    // Ping-pong: each message waits for its echo (one recv + one send each way in the loop).
    for (let i = 0; i < 1500; i++) {
      const msg = randomBytes(1 + ((i * 7919) % 3000));
      sent.update(msg);
      total += msg.length;
      if (i === 0) viaJs += 2 * msg.length;
      if (i === 1) viaJs += msg.length;
      expect(c.socket.write(msg)).toBe(msg.length);
      await until(() => c.received() === total, 5000, `echo of message ${i}`);
      // The first message went through JS; the second is written after an answer: hand-over.
      if (i === 0) expect(zcCount(h, "adopted")).toBe(0);
      if (i === 1) expect(zcCount(h, "adopted")).toBe(1);
    }
    // Pipelined: many messages in flight, coalesced or split anywhere on the way.
    for (let i = 0; i < 4000; i++) {
      const msg = randomBytes(1 + ((i * 104729) % 1500));
      sent.update(msg);
      total += msg.length;
      let off = 0;
      while (off < msg.length) {
        const n = c.socket.write(msg, off, msg.length - off);
        off += Math.max(n, 0);
        if (off < msg.length) await Bun.sleep(1);
      }
    }
    await until(() => c.received() === total, 10_000, "all pipelined echoes");
    expect(c.hash()).toBe(sent.digest("hex"));
    // Live, before the pair ends: what the loop moved so far, both ways.
    expect(h.zc.snapshot()["zerocopy_moved_bytes_total"]).toBe(2 * total - viaJs);
    expect(h.zc.snapshot()["zerocopy_active_pairs"]).toBe(1);
    c.socket.shutdown();
    // (A Bun socket that shut its own side reports the peer's FIN as a close without error.)
    expect(await c.closed).toBeUndefined();
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "the pair to finish");
    const m = h.metrics.snapshot();
    // The JS part counted as it went, the loop's part when the pair ended: every byte once.
    expect(m['proxy_tcp_bytes_total{direction="to_endpoint"}']).toBe(total);
    expect(m['proxy_tcp_bytes_total{direction="to_client"}']).toBe(total);
    expect(m["proxy_tcp_resets_total"] ?? 0).toBe(0);
    expect(zcCount(h, "done")).toBe(1);
    expect(zcCount(h, "resets")).toBe(0);
  }, 60_000);

  test("64 MiB each way with the client reading slowly at first: backpressure and bulk move to splice(2), bytes intact", async () => {
    const echo = track(echoServer());
    const h = await harness([{ name: "bulk", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("bulk");
    const data = randomBytes(64 * MiB);
    const p = await push(port, data, true);
    p.socket.pause(); // let every buffer on the way fill: the loop's sends come up short
    await Bun.sleep(300);
    p.socket.resume();
    await p.echoed;
    expect(p.received()).toBe(data.length);
    expect(p.hash()).toBe(sha256(data));
    expect(await p.closed).toBeUndefined();
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "the pair to finish");
    const m = h.metrics.snapshot();
    expect(m['proxy_tcp_bytes_total{direction="to_endpoint"}']).toBe(data.length);
    expect(m['proxy_tcp_bytes_total{direction="to_client"}']).toBe(data.length);
    expect(zcCount(h, "adopted")).toBe(1);
    expect(zcCount(h, "resets")).toBe(0);
  }, 60_000);

  test("half-close: the server's answer, sent after the client's FIN, arrives; then a clean FIN", async () => {
    // Reads until FIN, then answers with the byte count and its sha256, then closes.
    const server = track(
      Bun.listen<{ n: number; h: Bun.CryptoHasher }>({
        hostname: "127.0.0.1",
        port: 0,
        allowHalfOpen: true,
        data: null as never,
        socket: {
          binaryType: "uint8array",
          open(s) {
            s.data = { n: 0, h: new Bun.CryptoHasher("sha256") };
            s.write("hi;"); // a server that speaks first: the client's first write is after an answer
          },
          data(s, b) {
            s.data.n += b.length;
            s.data.h.update(b);
          },
          end(s) {
            s.end(`${s.data.n} ${s.data.h.digest("hex")}`);
          },
        },
      }),
    );
    const h = await harness([{ name: "half", endpoints: [{ port: server.port }] }]);
    const { port } = await h.addr("half");
    const data = randomBytes(200_000);
    const chunks: Uint8Array[] = [];
    let closed!: (e: Error | undefined) => void;
    const done = new Promise<Error | undefined>((r) => (closed = r));
    const s = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: { binaryType: "uint8array", data: (_s, b) => void chunks.push(b), close: (_s, e) => closed(e) },
    });
    await until(() => chunks.length > 0, 5000, "the greeting");
    let off = 0;
    while (off < data.length) {
      off += Math.max(0, s.write(data, off, data.length - off));
      if (off < data.length) await Bun.sleep(1);
    }
    await until(() => zcCount(h, "adopted") === 1, 5000, "the hand-over");
    s.shutdown();
    expect(await done).toBeUndefined();
    expect(Buffer.concat(chunks).toString()).toBe(`hi;${data.length} ${sha256(data)}`);
    await until(() => zcCount(h, "done") === 1, 5000, "the pair to finish");
    expect(zcCount(h, "resets")).toBe(0);
  });

  test("a server reset reaches the client as a reset and is counted", async () => {
    const server = track(
      Bun.listen({
        hostname: "127.0.0.1",
        port: 0,
        socket: {
          open(s) {
            s.write("hi");
          },
          data(s) {
            s.terminate(); // SO_LINGER 0 + close: RST
          },
        },
      }),
    );
    const h = await harness([{ name: "rst", endpoints: [{ port: server.port }] }]);
    const { port } = await h.addr("rst");
    let error: Error | undefined;
    let ended = false;
    let greeted = false;
    let closed!: () => void;
    const gone = new Promise<void>((r) => (closed = r));
    const s = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data() {
          greeted = true;
        },
        end() {
          ended = true;
        },
        close(_s, e) {
          error = e;
          closed();
        },
        error(_s, e) {
          error = e;
        },
      },
    });
    await until(() => greeted, 5000, "the greeting");
    s.write("trigger"); // after an answer: handed over in the same tick, before the reset comes
    await until(() => zcCount(h, "adopted") === 1, 5000, "the hand-over");
    await gone;
    // The loop passes a reset on as a reset (SO_LINGER 0), never as a clean FIN.
    expect(ended).toBe(false);
    expect(error).toBeDefined();
    await until(() => zcCount(h, "resets") === 1, 5000, "the reset to be reported");
    expect(h.metrics.snapshot()["proxy_tcp_resets_total"]).toBe(1);
  });

  test("a full pair table leaves the next connection in JS, and it works there", async () => {
    const echo = track(echoServer());
    const h = await harness([{ name: "full", endpoints: [{ port: echo.port }] }], 1);
    const { port } = await h.addr("full");
    const a = await connect(port);
    const b = await connect(port);
    await exchangeTwice(a);
    expect(zcCount(h, "adopted")).toBe(1);
    await exchangeTwice(b);
    expect(zcCount(h, "refused")).toBe(1);
    for (const [c, n] of [[a, 100_000], [b, 150_000]] as const) {
      const data = randomBytes(n);
      const before = c.received();
      c.socket.write(data);
      await until(() => c.received() === before + n, 5000, "the echo");
    }
    expect(zcCount(h, "adopted")).toBe(1);
    a.socket.end();
    b.socket.end();
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "both to finish");
  });

  test("stop resets adopted pairs and frees their descriptors", async () => {
    const echo = track(echoServer());
    const before = await settledFds();
    const h = await harness([{ name: "stop", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("stop");
    const clients = await Promise.all([connect(port), connect(port), connect(port)]);
    await Promise.all(clients.map(exchangeTwice));
    expect(zcCount(h, "adopted")).toBe(3);
    h.proxy.stop(); // the engine resets and reports its pairs asynchronously
    const results = await Promise.all(clients.map((c) => c.closed));
    for (const c of clients) expect(c.ended()).toBe(false); // a reset, not a FIN
    expect(results.length).toBe(3);
    await until(() => zcCount(h, "resets") === 3, 5000, "three pairs reported stopped");
    await until(() => h.proxy.stats().activeTcp === 0, 5000, "their Conns released");
    expect(await settledFds()).toBeLessThanOrEqual(before + 2);
  });
});

describe("start-up", () => {
  test("a loop that does not compile: nothing compiled at creation; at start one warning, the JS splice(2) engine instead", async () => {
    const dir = mkdtempSync(join(tmpdir(), "edgemesh-nf-"));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const bad = join(dir, "bad.c");
    writeFileSync(bad, "#include <no/such/header.h>\nint nf_run(void) { return 0 }\n");
    const log = createMemoryLogger();
    const metrics = createMetrics();
    const engine = createZeroCopyIfSupported({ maxPairs: 4, log, metrics, nativeSource: bad });
    expect(engine).toBeDefined();
    // Compiled with the worker, not at creation (an idle agent does not pay for TinyCC).
    expect(engine!.smallFlows).toBe(true);
    expect(log.lines.filter((l) => l.includes("WARN"))).toEqual([]);
    expect("zerocopy_adopted_total" in metrics.snapshot()).toBe(true);
    expect(await engine!.start()).toBe(true);
    expect(engine!.smallFlows).toBe(false);
    expect(engine!.ready).toBe(true);
    const warnings = log.lines.filter((l) => l.includes("WARN"));
    expect(warnings.length).toBe(1);
    expect(warnings[0]).toContain("native flow loop unavailable");
    await engine!.stop();
    expect(engine!.ready).toBe(false);
  });

  test("by default the agent's engine is the C loop", async () => {
    const log = createMemoryLogger();
    const engine = createZeroCopyIfSupported({ maxPairs: 4, log, metrics: createMetrics() });
    expect(engine!.smallFlows).toBe(true);
    expect(log.lines.filter((l) => l.includes("WARN"))).toEqual([]);
    await engine!.stop();
  });
});
