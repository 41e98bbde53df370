// The zero-copy engine over real loopback sockets: an in-process proxy (Bun.listen + Bun.connect)
// hands every connection to the engine as soon as its upstream is connected and closes its Bun
// sockets, so every byte below moved through splice(2) in the engine's worker.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Socket, TCPSocketListener } from "bun";
import { createZeroCopyEngine, socketFd, type ZeroCopyDoneInfo, type ZeroCopyEngine } from "../../src/hotpath/zerocopy/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { echoServer, openFds, randomBytes, settledFds, until, type EchoState } from "./proxy-support.ts";
import { recordDone, startZcProxy, type ZcProxy } from "../support/zc-proxy.ts";

interface MidSide {
  peer: Socket<MidSide> | null;
  /** Shared between both sides of one connection. */
  conn: MidConn;
}
interface MidConn {
  moved: number;
  pending: number; // sides with unsent bytes
  adopted: boolean;
  proxy: ZcProxy;
}

/**
 * The hook the TCP splice would use: forward in JS (write, pause on short write, resume on
 * drain) and, once `after` bytes went through with nothing buffered in user space, hand the
 * pair to the engine from inside a data handler and close the Bun sockets.
 */
function startMidStreamProxy(engine: ZeroCopyEngine, targetPort: number, after: number): ZcProxy {
  const proxy: ZcProxy = { listener: null as never, done: [], refused: 0 };
  const queued = new WeakMap<Socket<MidSide>, Uint8Array>();
  const forward = (from: Socket<MidSide>, buf: Uint8Array) => {
    const to = from.data.peer;
    const c = from.data.conn;
    if (to === null || c.adopted) return;
    const n = to.write(buf);
    c.moved += buf.length;
    if (n < buf.length) {
      queued.set(to, buf.subarray(Math.max(n, 0)));
      c.pending++;
      from.pause();
      return;
    }
    if (c.moved >= after && c.pending === 0) {
      if (engine.adopt(socketFd(from), socketFd(to), recordDone, c.proxy)) {
        c.adopted = true;
        from.close();
        to.close();
      } else c.proxy.refused++;
    }
  };
  const drain = (s: Socket<MidSide>) => {
    const b = queued.get(s);
    if (b === undefined) return;
    const n = s.write(b);
    if (n < b.length) return void queued.set(s, b.subarray(Math.max(n, 0)));
    queued.delete(s);
    s.data.conn.pending--;
    s.data.peer?.resume();
  };
  const handlers = {
    data: forward,
    drain,
    end(s: Socket<MidSide>) {
      if (!s.data.conn.adopted) s.data.peer?.shutdown();
    },
    close(s: Socket<MidSide>) {
      if (!s.data.conn.adopted) s.data.peer?.terminate();
    },
    error() {},
  };
  proxy.listener = Bun.listen<MidSide>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    socket: {
      ...handlers,
      open(client) {
        const conn: MidConn = { moved: 0, pending: 0, adopted: false, proxy };
        client.data = { peer: null, conn };
        client.pause();
        void Bun.connect<MidSide>({
          hostname: "127.0.0.1",
          port: targetPort,
          allowHalfOpen: true,
          data: { peer: client, conn },
          socket: {
            ...handlers,
            open(up) {
              client.data.peer = up;
              client.resume();
            },
            connectError() {
              client.terminate();
            },
          },
        });
      },
    },
  });
  return proxy;
}

interface ClientResult {
  sentHash: string;
  receivedHash: string;
  received: number;
  text: string;
  ended: boolean;
  error: string | null;
}
interface ClientOptions {
  /** Send our FIN after the payload (default true). */
  fin?: boolean;
  /** Called when the peer's FIN arrives. */
  onEnd?: (s: Socket<undefined>) => void;
  /** Live view of the result while the connection is open. */
  live?: (r: ClientResult) => void;
}

/** Stream `payload` to the port, hash everything that comes back, resolve on close. */
function client(port: number, payload: Uint8Array, opts: ClientOptions = {}): Promise<ClientResult> {
  return new Promise((resolve, reject) => {
    const rx = new Bun.CryptoHasher("sha256");
    const res: ClientResult = {
      sentHash: new Bun.CryptoHasher("sha256").update(payload).digest("hex"),
      receivedHash: "",
      received: 0,
      text: "",
      ended: false,
      error: null,
    };
    opts.live?.(res);
    let off = 0;
    const pump = (s: Socket<undefined>) => {
      while (off < payload.length) {
        const len = Math.min(256 * 1024, payload.length - off);
        const n = s.write(payload, off, len);
        if (n > 0) off += n;
        if (n < len) return;
      }
      if (opts.fin !== false) s.shutdown();
    };
    Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        open: pump,
        drain: pump,
        data(_s, d) {
          rx.update(d);
          res.received += d.length;
          if (res.text.length < 4096) res.text += Buffer.from(d).toString("latin1");
        },
        end(s) {
          res.ended = true;
          opts.onEnd?.(s);
        },
        close(_s, err) {
          res.error = err ? String((err as { code?: string }).code ?? err) : null;
          res.receivedHash = rx.digest("hex");
          resolve(res);
        },
        error() {},
      },
    }).catch(reject);
  });
}

const metrics = createMetrics();
const log = createMemoryLogger();
let engine: ZeroCopyEngine;
let echo: TCPSocketListener<EchoState>;
let proxy: ZcProxy;
let fdsAtStart = 0;

beforeAll(async () => {
  fdsAtStart = openFds();
  engine = createZeroCopyEngine({ maxPairs: 256, log, metrics });
  expect(await engine.start()).toBe(true);
  echo = echoServer();
  proxy = startZcProxy(engine, echo.port);
});

afterAll(async () => {
  await engine.stop();
  proxy.listener.stop(true);
  echo.stop(true);
});

describe("zero-copy engine (splice through bun:ffi, epoll loop in a Worker)", () => {
  test("100 MB of random data echoed through an adopted pair arrives intact (sha256) and is counted", async () => {
    const payload = randomBytes(100 * 1024 * 1024);
    const before = proxy.done.length;
    const r = await client(proxy.listener.port, payload);
    expect(r.received).toBe(payload.length);
    expect(r.receivedHash).toBe(r.sentHash);
    await until(() => proxy.done.length === before + 1, 5000, "pair done");
    const info = proxy.done.at(-1)!;
    expect(info).toEqual({ reason: "done", bytesAtoB: payload.length, bytesBtoA: payload.length, errno: 0 });
    expect(metrics.snapshot()["zerocopy_bytes_total"]).toBeGreaterThanOrEqual(2 * payload.length);
    expect(engine.bytesMoved()).toBeGreaterThanOrEqual(2 * payload.length);
  }, 60_000);

  test("mid-stream hand-over: 1 MiB forwarded by Bun, then adopted from a data handler; 50 MB arrive intact", async () => {
    const p = startMidStreamProxy(engine, echo.port, 1024 * 1024);
    try {
      const payload = randomBytes(50 * 1024 * 1024);
      const r = await client(p.listener.port, payload);
      expect(r.received).toBe(payload.length);
      expect(r.receivedHash).toBe(r.sentHash);
      await until(() => p.done.length === 1, 5000, "pair done");
      expect(p.done[0]!.reason).toBe("done");
      // The engine moved the rest: most bytes, but not the first MiB.
      expect(p.done[0]!.bytesAtoB + p.done[0]!.bytesBtoA).toBeGreaterThan(payload.length);
      expect(p.done[0]!.bytesAtoB + p.done[0]!.bytesBtoA).toBeLessThan(2 * payload.length);
      expect(p.refused).toBe(0);
    } finally {
      p.listener.stop(true);
    }
  }, 60_000);

  test("client half-close: the upstream sees the FIN, still answers, and the answer reaches the client", async () => {
    const up = Bun.listen<{ n: number }>({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open(s) {
          s.data = { n: 0 };
        },
        data(s, d) {
          s.data.n += d.length;
        },
        end(s) {
          s.write(`saw ${s.data.n} then FIN`);
          s.shutdown();
        },
        close() {},
        error() {},
      },
    });
    const p = startZcProxy(engine, up.port);
    try {
      const r = await client(p.listener.port, new Uint8Array(300_000).fill(7));
      expect(r.text).toBe("saw 300000 then FIN");
      await until(() => p.done.length === 1, 5000, "pair done");
      expect(p.done[0]!.reason).toBe("done");
      expect(p.done[0]!.bytesAtoB).toBe(300_000);
    } finally {
      p.listener.stop(true);
      up.stop(true);
    }
  });

  test("upstream half-close: the client gets data and FIN first, then its late bytes still reach the upstream", async () => {
    let upstreamGot = "";
    let upstreamEnded = false;
    const up = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        open(s) {
          s.write("hello, then FIN");
          s.shutdown();
        },
        data(_s, d) {
          upstreamGot += Buffer.from(d).toString();
        },
        // Bun reports the FIN of a peer whose own side we already shut as close, not end.
        end() {
          upstreamEnded = true;
        },
        close() {
          upstreamEnded = true;
        },
        error() {},
      },
    });
    const p = startZcProxy(engine, up.port);
    try {
      const r = await client(p.listener.port, new Uint8Array(0), {
        fin: false,
        onEnd(s) {
          s.write("late bytes after the upstream's FIN");
          s.shutdown();
        },
      });
      expect(r.text).toBe("hello, then FIN");
      expect(r.ended).toBe(true);
      await until(() => upstreamEnded, 5000, "upstream to see the client's FIN");
      expect(upstreamGot).toBe("late bytes after the upstream's FIN");
      await until(() => p.done.length === 1, 5000, "pair done");
      expect(p.done[0]!.reason).toBe("done");
    } finally {
      p.listener.stop(true);
      up.stop(true);
    }
  });

  test("an upstream reset resets the client and reports the pair as reset with its errno", async () => {
    const up = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        data(s) {
          s.terminate(); // RST (SO_LINGER 0)
        },
        close() {},
        error() {},
      },
    });
    const p = startZcProxy(engine, up.port);
    try {
      const r = await client(p.listener.port, randomBytes(4 * 1024 * 1024), { fin: false });
      // The client's own view cannot tell: Bun reports a peer RST that arrives while it writes as
      // end + close without error (the write consumed ECONNRESET, the next read sees EOF). The
      // engine's report is the evidence: it saw the socket error and reset instead of FIN.
      expect(r.received).toBe(0);
      await until(() => p.done.length === 1, 5000, "pair done");
      expect(p.done[0]!.reason).toBe("reset");
      expect([104, 32]).toContain(p.done[0]!.errno); // ECONNRESET or EPIPE
    } finally {
      p.listener.stop(true);
      up.stop(true);
    }
  });

  test("a client reset resets the upstream (no FIN reaches it) and reports the pair as reset", async () => {
    let upstreamEnded = false;
    let upstreamClosed = false;
    let upstreamBytes = 0;
    const up = Bun.listen({
      hostname: "127.0.0.1",
      port: 0,
      allowHalfOpen: true,
      socket: {
        data(_s, d) {
          upstreamBytes += d.length;
        },
        end() {
          upstreamEnded = true;
        },
        close() {
          upstreamClosed = true;
        },
        error() {},
      },
    });
    const p = startZcProxy(engine, up.port);
    try {
      const s = await Bun.connect({ hostname: "127.0.0.1", port: p.listener.port, socket: { data() {}, close() {}, error() {} } });
      s.write("some bytes before the reset");
      await until(() => upstreamBytes > 0, 5000, "bytes at the upstream");
      s.terminate(); // RST
      await until(() => p.done.length === 1, 5000, "pair done");
      expect(p.done[0]!.reason).toBe("reset");
      await until(() => upstreamClosed, 5000, "upstream closed");
      expect(upstreamEnded).toBe(false);
    } finally {
      p.listener.stop(true);
      up.stop(true);
    }
  });

  test("200 concurrent pairs each echo 64 KiB intact, and every fd they used is released", async () => {
    await until(() => engine.active === 0, 5000, "previous pairs to finish");
    const fdsBefore = await settledFds();
    const before = proxy.done.length;
    const payloads = Array.from({ length: 200 }, () => randomBytes(64 * 1024));
    const results = await Promise.all(payloads.map((pl) => client(proxy.listener.port, pl)));
    for (const r of results) {
      expect(r.received).toBe(64 * 1024);
      expect(r.receivedHash).toBe(r.sentHash);
    }
    await until(() => proxy.done.length === before + 200, 10_000, "200 pairs done");
    expect(proxy.done.slice(before).every((d) => d.reason === "done")).toBe(true);
    expect(proxy.refused).toBe(0);
    expect(engine.active).toBe(0);
    // <=: sockets of earlier tests may still have been closing when fdsBefore was counted.
    await until(() => openFds() <= fdsBefore, 5000, `fds back to ${fdsBefore} (now ${openFds()})`);
    expect(openFds()).toBeLessThanOrEqual(fdsBefore);
  }, 30_000);

  test("a full engine refuses the hand-over and leaves the caller's sockets untouched", async () => {
    const smallMetrics = createMetrics();
    const small = createZeroCopyEngine({ maxPairs: 1, log, metrics: smallMetrics });
    expect(await small.start()).toBe(true);
    const p = startZcProxy(small, echo.port);
    try {
      let firstLive: ClientResult | null = null;
      const first = client(p.listener.port, new Uint8Array(10), { fin: false, live: (r) => (firstLive = r) });
      await until(() => small.active === 1 && firstLive !== null && firstLive.received === 10, 5000, "first pair adopted and echoing");
      expect(small.bytesMoved()).toBe(20); // live progress, before the pair ends
      const second = await client(p.listener.port, new Uint8Array(10), { fin: false });
      expect(p.refused).toBe(1); // the test proxy then resets it: nothing was adopted
      expect(smallMetrics.snapshot()["zerocopy_refused_total"]).toBe(1);
      expect(smallMetrics.snapshot()["zerocopy_adopted_total"]).toBe(1);
      expect(second.received).toBe(0);
      expect(small.active).toBe(1);
      await small.stop();
      const r = await first;
      expect(r.received).toBe(10);
      expect(r.receivedHash).toBe(r.sentHash);
    } finally {
      await small.stop();
      p.listener.stop(true);
    }
  });

  test("stop() resets every adopted pair, reports each as stopped, refuses new ones and frees its fds", async () => {
    const fdsBefore = await settledFds();
    const own = createZeroCopyEngine({ maxPairs: 64, log, metrics: createMetrics() });
    expect(await own.start()).toBe(true);
    const p = startZcProxy(own, echo.port);
    const clients = Array.from({ length: 20 }, () => client(p.listener.port, new Uint8Array(0), { fin: false }));
    await until(() => own.active === 20, 5000, "20 pairs adopted");
    await own.stop();
    const results = await Promise.all(clients);
    expect(results.every((r) => !r.ended)).toBe(true); // reset, not FIN
    expect(p.done.length).toBe(20);
    expect(p.done.every((d) => d.reason === "stopped")).toBe(true);
    expect(own.active).toBe(0);
    expect(own.adopt(0, 1, recordDone, p)).toBe(false);
    p.listener.stop(true);
    // <=: sockets of earlier tests may still have been closing when fdsBefore was counted.
    await until(() => openFds() <= fdsBefore, 5000, `fds back to ${fdsBefore} (now ${openFds()})`);
    expect(openFds()).toBeLessThanOrEqual(fdsBefore);
  });

  test("after everything stops, the process holds exactly the fds it held before the engine existed", async () => {
    await engine.stop();
    proxy.listener.stop(true);
    echo.stop(true);
    await until(() => openFds() <= fdsAtStart, 5000, `fds back to ${fdsAtStart} (now ${openFds()})`);
    expect(openFds()).toBe(fdsAtStart);
  });
});
