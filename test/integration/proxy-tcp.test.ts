import { afterAll, describe, expect, test } from "bun:test";
import type { Socket } from "bun";
import type { ByteStream, RemoteDialer, StreamSink } from "../../src/hotpath/index.ts";
import { createZeroCopyEngine } from "../../src/hotpath/zerocopy/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";
import { echoServer, makeTable, push, randomBytes, runCleanups, startProxy, type Harness } from "./proxy-support.ts";

const cleanups: (() => void)[] = [];
afterAll(() => runCleanups(cleanups));

function track<T extends { stop(force?: boolean): void }>(x: T): T {
  cleanups.push(() => x.stop(true));
  return x;
}

interface Client {
  socket: Socket<undefined>;
  received: () => string;
  closed: Promise<Error | undefined>;
}

async function connect(port: number): Promise<Client> {
  let text = "";
  let done!: (e: Error | undefined) => void;
  const closed = new Promise<Error | undefined>((r) => (done = r));
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    socket: {
      data(_s, b) {
        text += b.toString();
      },
      close(_s, err) {
        done(err);
      },
      connectError(_s, err) {
        done(err);
      },
    },
  });
  return { socket, received: () => text, closed };
}

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await Bun.sleep(5);
  }
}

async function readPort(p: { stdout: ReadableStream<Uint8Array<ArrayBuffer>> }): Promise<number> {
  const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return Number(text.trim());
}

/** Every proxy here runs with its own zero-copy engine, as the agent does (its metrics apart). */
function harness(specs: Parameters<typeof startProxy>[0], extra: Parameters<typeof startProxy>[1] = {}): Harness & { zc: MetricsRegistry } {
  const zc = createMetrics();
  const h = startProxy(specs, { zeroCopy: createZeroCopyEngine({ maxPairs: 64, log: createMemoryLogger(), metrics: zc }), ...extra });
  cleanups.push(() => h.proxy.stop());
  return { ...h, zc };
}

describe("TCP splice", () => {
  test("echoes 100 MB of random data intact (sha256)", async () => {
    const echo = track(echoServer());
    const h = harness([{ name: "echo", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("echo");
    const total = 100 * 1024 * 1024;
    const data = randomBytes(total);
    const sent = new Bun.CryptoHasher("sha256").update(data).digest("hex");
    const p = await push(port, data, true);
    await p.echoed;
    expect(p.received()).toBe(total);
    expect(p.hash()).toBe(sent);
    // The engine is on: a flow this size was handed over to it.
    expect(h.zc.snapshot()["zerocopy_adopted_total"]).toBe(1);
  }, 60_000);

  test("serves HTTP through fetch, keep-alive and POST bodies included", async () => {
    const server = track(
      Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req) => new Response(`${req.method} ${new URL(req.url).pathname} ${await req.text()}`) }),
    );
    const h = harness([{ name: "http", endpoints: [{ port: server.port! }] }]);
    const { port } = await h.addr("http");
    for (let i = 0; i < 20; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/p${i}`, { method: "POST", body: `body-${i}` });
      expect(await r.text()).toBe(`POST /p${i} body-${i}`);
    }
    expect(h.proxy.stats().tcpAccepted).toBeGreaterThanOrEqual(1);
  });

  test("passes a WebSocket session through", async () => {
    const server = track(
      Bun.serve({
        hostname: "127.0.0.1",
        port: 0,
        fetch: (req, srv) => (srv.upgrade(req) ? undefined : new Response("no", { status: 400 })),
        websocket: { message: (ws, msg) => void ws.send(`echo:${msg}`) },
      }),
    );
    const h = harness([{ name: "ws", endpoints: [{ port: server.port! }] }]);
    const { port } = await h.addr("ws");
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => {
        for (let i = 0; i < 10; i++) ws.send(`m${i}`);
      };
      ws.onmessage = (ev) => {
        got.push(String(ev.data));
        if (got.length === 10) resolve();
      };
      ws.onerror = () => reject(new Error("websocket error"));
    });
    ws.close();
    expect(got).toEqual(Array.from({ length: 10 }, (_, i) => `echo:m${i}`));
  });

  test("half-close: the server's reply sent after the client's FIN arrives", async () => {
    const server = track(
      Bun.listen<{ n: number }>({
        hostname: "127.0.0.1",
        port: 0,
        allowHalfOpen: true,
        data: { n: 0 },
        socket: {
          open(s) {
            s.data = { n: 0 };
          },
          data(s, b) {
            s.data.n += b.length;
          },
          end(s) {
            setTimeout(() => {
              s.write(`got ${s.data.n} bytes, bye`);
              s.shutdown();
            }, 50);
          },
        },
      }),
    );
    const h = harness([{ name: "half", endpoints: [{ port: server.port }] }]);
    const { port } = await h.addr("half");
    const c = await connect(port);
    c.socket.write("x".repeat(1000));
    await Bun.sleep(20);
    c.socket.shutdown();
    const err = await c.closed;
    expect(err).toBeUndefined();
    expect(c.received()).toBe("got 1000 bytes, bye");
    await until(() => h.proxy.stats().activeTcp === 0);
  });

  test("half-close from the server: the client keeps sending after the server's FIN", async () => {
    let counted = -1;
    const server = track(
      Bun.listen<{ n: number }>({
        hostname: "127.0.0.1",
        port: 0,
        allowHalfOpen: true,
        data: { n: 0 },
        socket: {
          open(s) {
            s.data = { n: 0 };
            s.write("hello, I am done talking");
            s.shutdown();
          },
          data(s, b) {
            s.data.n += b.length;
          },
          // Having shut down first, Bun reports the client's FIN as a clean close (no end()).
          close(s, err) {
            counted = err === undefined ? s.data.n : -2;
          },
        },
      }),
    );
    const h = harness([{ name: "srvfin", endpoints: [{ port: server.port }] }]);
    const { port } = await h.addr("srvfin");
    let sawEnd = false;
    let text = "";
    const c = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      allowHalfOpen: true,
      socket: {
        data: (_s, b) => void (text += b.toString()),
        end: () => void (sawEnd = true),
      },
    });
    await until(() => sawEnd);
    expect(text).toBe("hello, I am done talking");
    c.write("y".repeat(5000));
    await Bun.sleep(20);
    c.shutdown();
    await until(() => counted >= 0);
    expect(counted).toBe(5000);
    await until(() => h.proxy.stats().activeTcp === 0);
  });

  test("endpoints on another node go through the RemoteDialer seam", async () => {
    const echo = track(echoServer());
    const dials: string[] = [];
    // A stand-in tunnel: reaches the "remote" endpoint over a plain local socket and adapts
    // Bun's socket events to the StreamSink, as the libp2p stream adapter will.
    const remote: RemoteDialer = {
      dial(node, ip, p, protocol, sink) {
        dials.push(`${node}/${ip}:${p}/${protocol}`);
        Bun.connect({
          hostname: "127.0.0.1",
          port: echo.port,
          allowHalfOpen: true,
          socket: {
            binaryType: "uint8array",
            open: (s) => sink.open(s as unknown as ByteStream),
            connectError: (_s, e) => sink.fail(e),
            data: (_s, b) => sink.data(b),
            drain: () => sink.drain(),
            end: () => sink.end(),
            close: (_s, e) => sink.close(e),
          },
        }).catch(() => {});
      },
    };
    const h = harness([{ name: "remote", endpoints: [{ ip: "10.244.9.9", port: 8080, node: "node-b" }] }], { remote });
    const { port } = await h.addr("remote");
    const c = await connect(port);
    c.socket.write("through the tunnel");
    await until(() => c.received() === "through the tunnel");
    c.socket.end();
    expect(dials).toEqual(["node-b/10.244.9.9:8080/TCP"]);
    await until(() => h.proxy.stats().activeTcp === 0);
  });

  test("streams arriving from a peer are spliced into the local endpoint (spliceInbound)", async () => {
    const echo = track(echoServer());
    const dead = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const deadPort = dead.port;
    dead.stop(true);
    const h = harness([]);
    const results: boolean[] = [];
    // A stand-in tunnel: each accepted socket plays the stream a peer opened; its first byte
    // says which local endpoint it wants ("e" echo, "d" dead), the way the proxy header would.
    const tunnel = track(
      Bun.listen<{ sink: StreamSink | null }>({
        hostname: "127.0.0.1",
        port: 0,
        allowHalfOpen: true,
        data: { sink: null },
        socket: {
          binaryType: "uint8array",
          open(s) {
            s.data = { sink: null };
          },
          data(s, b) {
            if (s.data.sink) return s.data.sink.data(b);
            const port = b[0] === 101 ? echo.port : deadPort;
            s.data.sink = h.proxy.spliceInbound("127.0.0.1", port, s as unknown as ByteStream, (ok) => {
              results.push(ok);
              if (ok) s.write("SUCCESS;");
            });
            if (b.length > 1) s.data.sink?.data(b.subarray(1));
          },
          drain: (s) => s.data.sink?.drain(),
          end: (s) => s.data.sink?.end(),
          close: (s, e) => s.data.sink?.close(e),
        },
      }),
    );
    const ok = await connect(tunnel.port);
    ok.socket.write("ehello from a peer");
    await until(() => ok.received() === "SUCCESS;hello from a peer");
    ok.socket.shutdown();
    await ok.closed;
    const bad = await connect(tunnel.port);
    bad.socket.write("d");
    await bad.closed;
    expect(bad.received()).toBe("");
    expect(results).toEqual([true, false]);
    await until(() => h.proxy.stats().activeTcp === 0);
  });

  test("a refusing endpoint is skipped and counted", async () => {
    const echo = track(echoServer());
    const dead = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const deadPort = dead.port;
    dead.stop(true); // nothing listens there now: connections are refused
    const h = harness([{ name: "mixed", endpoints: [{ port: deadPort }, { port: echo.port }] }]);
    const { port } = await h.addr("mixed");
    for (let i = 0; i < 6; i++) {
      const c = await connect(port);
      c.socket.write(`hello ${i}`);
      await until(() => c.received() === `hello ${i}`);
      c.socket.end();
    }
    expect(h.proxy.stats().dialFailures).toBeGreaterThanOrEqual(3);
  });

  test("a blackholed endpoint times out and fails over without stalling other connections", async () => {
    // A listener that never accepts, with its backlog filled: further SYNs are dropped, so a
    // dial to it hangs until our dial timeout (the kernel alone would retry for minutes).
    const py = Bun.spawn(
      ["python3", "-c", "import socket,sys,time\ns=socket.socket()\ns.bind(('127.0.0.1',0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)"],
      { stdout: "pipe" },
    );
    cleanups.push(() => py.kill());
    const holePort = await readPort(py);
    const fillers: Socket<undefined>[] = [];
    for (let i = 0; i < 3; i++) {
      const f = await Promise.race([
        Bun.connect({ hostname: "127.0.0.1", port: holePort, socket: { data() {} } }).catch(() => null),
        Bun.sleep(200).then(() => null),
      ]);
      if (f) fillers.push(f);
    }
    cleanups.push(() => fillers.forEach((f) => f.terminate()));
    const echo = track(echoServer());
    const h = harness([{ name: "hole", endpoints: [{ port: holePort }, { port: echo.port }] }], { dialTimeoutMs: 400 });
    const { port } = await h.addr("hole");
    const t0 = Date.now();
    const stuck = await connect(port); // round robin sends this one to the blackhole first
    stuck.socket.write("late");
    const quick = await connect(port); // and this one to the echo server
    quick.socket.write("quick");
    await until(() => quick.received() === "quick");
    expect(Date.now() - t0).toBeLessThan(300);
    await until(() => stuck.received() === "late");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    expect(h.metrics.snapshot()['proxy_tcp_dial_failures_total{reason="timeout"}']).toBe(1);
    stuck.socket.end();
    quick.socket.end();
  });

  test("when every endpoint refuses, the client is closed after the backoff rounds", async () => {
    const dead = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    const deadPort = dead.port;
    dead.stop(true);
    const h = harness([{ name: "dead", endpoints: [{ port: deadPort }] }]);
    const { port } = await h.addr("dead");
    const c = await connect(port);
    c.socket.write("anyone?");
    await c.closed;
    expect(c.received()).toBe("");
    expect(h.metrics.snapshot()['proxy_tcp_refused_total{reason="no_endpoint"}']).toBe(1);
    expect(h.proxy.stats().dialFailures).toBe(4);
    await until(() => h.proxy.stats().activeTcp === 0);
  }, 10_000);

  test("bytes sent while the upstream is still connecting are replayed", async () => {
    const echo = track(echoServer());
    const h = harness([{ name: "early", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("early");
    const c = await connect(port);
    for (let i = 0; i < 50; i++) c.socket.write(`${i},`);
    const want = Array.from({ length: 50 }, (_, i) => `${i},`).join("");
    await until(() => c.received() === want);
    c.socket.end();
  });

  test("existing connections survive endpoint churn and removal of their service", async () => {
    const a = track(echoServer("A"));
    const b = track(echoServer("B"));
    const h = harness([{ name: "churn", endpoints: [{ port: a.port }] }]);
    const { port } = await h.addr("churn");
    const c1 = await connect(port);
    await until(() => c1.received() === "A");
    // New endpoint set: new connections go to B, the open one stays on A.
    h.table.publish(makeTable([{ name: "churn", endpoints: [{ port: b.port }] }]));
    expect((await h.addr("churn")).port).toBe(port); // same key keeps its listener
    const c2 = await connect(port);
    await until(() => c2.received() === "B");
    c1.socket.write("still-here");
    await until(() => c1.received() === "Astill-here");
    // The service disappears: its listener closes, open connections keep working.
    h.table.publish(makeTable([]));
    expect(h.proxy.listeners().size).toBe(0);
    const refused = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then(
      () => "connected",
      () => "refused",
    );
    expect(refused).toBe("refused");
    c1.socket.write("!");
    c2.socket.write("?");
    await until(() => c1.received() === "Astill-here!" && c2.received() === "B?");
    c1.socket.end();
    c2.socket.end();
    await until(() => h.proxy.stats().activeTcp === 0);
  });

  test("the per-port cap refuses connections past it, and frees slots when they close", async () => {
    const echo = track(echoServer());
    const h = harness([{ name: "capped", endpoints: [{ port: echo.port }] }], { maxConnectionsPerPort: 3 });
    const { port } = await h.addr("capped");
    const held: Client[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await connect(port);
      c.socket.write("k");
      await until(() => c.received() === "k");
      held.push(c);
    }
    const over = await connect(port);
    await over.closed;
    expect(over.received()).toBe("");
    expect(h.metrics.snapshot()['proxy_tcp_refused_total{reason="limit"}']).toBe(1);
    held[0]!.socket.end();
    await until(() => h.proxy.stats().activeTcp === 2);
    const again = await connect(port);
    again.socket.write("ok");
    await until(() => again.received() === "ok");
    for (const c of [...held, again]) c.socket.end();
  });

  test("round robin alternates endpoints per connection", async () => {
    const a = track(echoServer("A"));
    const b = track(echoServer("B"));
    const h = harness([{ name: "rr", endpoints: [{ port: a.port }, { port: b.port }] }]);
    const { port } = await h.addr("rr");
    const seen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(port);
      await until(() => c.received().length === 1);
      seen.push(c.received());
      c.socket.end();
    }
    expect(seen.join("")).toMatch(/^(AB){3}$|^(BA){3}$/);
  });

  test("header hashing reads the request head, sticks per value and replays the request", async () => {
    const mk = (id: string) =>
      track(Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: async (req) => new Response(`${id}:${await req.text()}`) }));
    const servers = [mk("s0"), mk("s1"), mk("s2")];
    const h = harness([
      {
        name: "hh",
        policy: { kind: "CONSISTENT_HASH_HEADER", header: "x-user" },
        endpoints: servers.map((s) => ({ port: s.port! })),
      },
    ]);
    const { port } = await h.addr("hh");
    const owners = new Set<string>();
    for (const user of ["alice", "bob", "carol", "dave", "erin", "frank"]) {
      const ids = new Set<string>();
      for (let i = 0; i < 4; i++) {
        // A fresh connection each time: the choice is made per connection.
        const r = await fetch(`http://127.0.0.1:${port}/`, { method: "POST", body: `b${i}`, headers: { "x-user": user, connection: "close" } });
        const [id, body] = (await r.text()).split(":");
        expect(body).toBe(`b${i}`);
        ids.add(id!);
      }
      expect(ids.size).toBe(1);
      owners.add([...ids][0]!);
    }
    expect(owners.size).toBeGreaterThan(1);
  });

  test("a client reset while the proxy writes to it is passed on as a reset, every time", async () => {
    // Bun can report a RST that hits a write in flight as a plain close (no error, no end);
    // the splice must still count it and reset the upstream rather than send it a FIN.
    const chunk = new Uint8Array(16384);
    const server = track(
      Bun.listen<{ t: ReturnType<typeof setInterval> | null }>({
        hostname: "127.0.0.1",
        port: 0,
        allowHalfOpen: true,
        data: { t: null },
        socket: {
          open(s) {
            s.data = { t: setInterval(() => s.write(chunk), 0) };
          },
          data() {},
          close(s) {
            if (s.data.t !== null) clearInterval(s.data.t);
          },
          error() {},
        },
      }),
    );
    const h = harness([{ name: "rst", endpoints: [{ port: server.port }] }]);
    const { port } = await h.addr("rst");
    const N = 40;
    for (let i = 0; i < N; i++) {
      const c = await connect(port);
      await until(() => c.received().length > 0);
      await Bun.sleep(i % 7);
      c.socket.terminate();
    }
    await until(() => h.proxy.stats().activeTcp === 0);
    expect(h.metrics.snapshot()["proxy_tcp_resets_total"]).toBe(N);
  }, 30_000);

  test("drain stops accepting and waits for open connections", async () => {
    const echo = track(echoServer());
    const h = harness([{ name: "drain", endpoints: [{ port: echo.port }] }]);
    const { port } = await h.addr("drain");
    const c = await connect(port);
    c.socket.write("x");
    await until(() => c.received() === "x");
    const drained = h.proxy.drain(2000);
    await Bun.sleep(50);
    expect(h.proxy.listeners().size).toBe(0);
    c.socket.write("y");
    await until(() => c.received() === "xy");
    c.socket.end();
    const t0 = Date.now();
    await drained;
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(h.proxy.stats().activeTcp).toBe(0);
  });
});
