import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Server, TCPSocketListener } from "bun";
import { backendService, gatewayObject, rawRequests, service, somePort, startBackend, startGateway, virtualService, type Backend, type TestGateway } from "./gateway-support.ts";

const GW = somePort();
/** A second port whose only VirtualService serves shop.example under /shop. */
const GW2 = GW + 1;
let web: Backend;
let api: Backend;
let canary: Backend;
let g: TestGateway;

const vs = () =>
  virtualService("routes", {
    hosts: ["*"],
    gateways: ["gw"],
    http: [
      { name: "api", match: [{ uri: { prefix: "/api/" } }], rewrite: { uri: "/v2/" }, headers: { request: { set: { "x-route": "api" } }, response: { remove: ["x-drop-me"], add: { "x-gw": "yes" } } }, route: [{ destination: { host: "api" } }] },
      { name: "split", match: [{ uri: { prefix: "/split" } }], route: [{ destination: { host: "web" }, weight: 80 }, { destination: { host: "canary" }, weight: 20 }] },
      { name: "slow", match: [{ uri: { prefix: "/slow" } }], timeout: "150ms", route: [{ destination: { host: "web" } }] },
      { name: "dead", match: [{ uri: { prefix: "/dead" } }], retries: { attempts: 2, perTryTimeout: "200ms" }, route: [{ destination: { host: "dead" } }] },
      { name: "half", match: [{ uri: { prefix: "/half" } }], route: [{ destination: { host: "half" } }] },
      { name: "web", match: [{ uri: { prefix: "/" } }], route: [{ destination: { host: "web" } }] },
    ],
  });

beforeAll(async () => {
  web = startBackend("web");
  api = startBackend("api", "127.0.0.2");
  canary = startBackend("canary");
  g = await startGateway(
    {
      Service: [],
      EndpointSlice: [],
      Gateway: [gatewayObject("gw", [{ port: { number: GW, protocol: "HTTP" }, hosts: ["*"] }]), gatewayObject("gw2", [{ port: { number: GW2, protocol: "HTTP" }, hosts: ["shop.example"] }])],
      VirtualService: [
        vs(),
        virtualService("shop", { hosts: ["shop.example"], gateways: ["gw", "gw2"], http: [{ match: [{ uri: { exact: "/" } }], route: [{ destination: { host: "canary" } }] }] }),
      ],
    },
  );
  const objs = [
    ...backendService("web", web),
    ...backendService("api", api),
    ...backendService("canary", canary),
    // 127.0.0.1:1 refuses; 10.255.255.1 blackholes (connect timeout).
    ...service("dead", 80, [{ ip: "127.0.0.1", port: 1 }, { ip: "127.0.0.1", port: 2 }]),
    ...service("half", 80, [{ ip: "127.0.0.1", port: 1 }, { ip: web.ip, port: web.port }]),
  ];
  await g.apply({ Service: objs.filter((o) => o.kind === "Service"), EndpointSlice: objs.filter((o) => o.kind === "EndpointSlice") });
});

afterAll(() => {
  g?.stop();
  web?.stop();
  api?.stop();
  canary?.stop();
});

const get = (path: string, host = "gw.test", extra = "") => `GET ${path} HTTP/1.1\r\nHost: ${host}\r\n${extra}\r\n`;

describe("HTTP routing", () => {
  test("each request on one keep-alive connection is routed on its own (path and Host)", async () => {
    const { responses, closed } = await rawRequests(g.port(GW), [get("/index"), get("/api/users?id=7"), get("/", "shop.example"), get("/again")]);
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200]);
    expect(responses.map((r) => JSON.parse(r.body).name)).toEqual(["web", "api", "canary", "web"]);
    expect(closed).toBe(false);
  });

  test("rewrite.uri replaces the matched prefix; request and response headers are changed; X-Forwarded-For is added", async () => {
    const { responses } = await rawRequests(g.port(GW), [get("/api/users?id=7", "gw.test", "X-Forwarded-For: 10.9.9.9\r\nConnection: keep-alive\r\n")]);
    const r = responses[0]!;
    const body = JSON.parse(r.body);
    expect(body.path).toBe("/v2/users?id=7");
    expect(body.headers["x-route"]).toBe("api");
    expect(body.headers["x-forwarded-for"]).toBe("10.9.9.9, 127.0.0.1");
    expect(body.headers["x-forwarded-proto"]).toBe("http");
    expect(body.headers["connection"]).toBeUndefined();
    expect(r.headers["x-gw"]).toBe("yes");
    expect(r.headers["x-drop-me"]).toBeUndefined();
  });

  test("upstream connections are pooled: 20 sequential requests reuse one backend connection", async () => {
    const before = new Set(web.connections);
    const reqs = Array.from({ length: 20 }, (_, i) => get(`/pool/${i}`));
    const { responses } = await rawRequests(g.port(GW), reqs);
    expect(responses.length).toBe(20);
    const fresh = [...web.connections].filter((p) => !before.has(p));
    expect(fresh.length).toBeLessThanOrEqual(1);
    expect(g.metrics.snapshot()["gateway_upstream_reused_total"]).toBeGreaterThanOrEqual(19);
  });

  test("a client that asks to close gets connection: close on the response, then the close", async () => {
    const { responses, closed } = await rawRequests(g.port(GW), [get("/bye", "gw.test", "Connection: close\r\n")]);
    expect(responses[0]!.status).toBe(200);
    expect(responses[0]!.headers["connection"]).toBe("close");
    expect(closed).toBe(true);
    // The upstream connection was not closed with it: it went back to the pool.
    const before = new Set(web.connections);
    await rawRequests(g.port(GW), [get("/again")]);
    expect([...web.connections].filter((p) => !before.has(p)).length).toBe(0);
  });

  test("pipelined requests in one write are answered in order", async () => {
    const { responses } = await rawRequests(g.port(GW), [get("/p1"), get("/api/p2"), get("/p3")], { pipelined: true });
    expect(responses.map((r) => JSON.parse(r.body).path)).toEqual(["/p1", "/v2/p2", "/p3"]);
  });

  test("bodies: Content-Length and chunked requests, chunked and 1 MiB responses pass through", async () => {
    const port = g.port(GW);
    const big = new Uint8Array(1 << 20).map((_, i) => i % 251);
    let sum = 0;
    for (const x of big) sum = (sum + x) % 65521;
    const r1 = await fetch(`http://127.0.0.1:${port}/upload`, { method: "POST", body: big });
    expect(await r1.json()).toEqual({ name: "web", length: big.length, sum });
    const chunkedReq = `POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n`;
    const { responses } = await rawRequests(port, [chunkedReq, get("/after")]);
    expect(JSON.parse(responses[0]!.body).length).toBe(11);
    expect(JSON.parse(responses[1]!.body).path).toBe("/after");
    const r2 = await fetch(`http://127.0.0.1:${port}/chunked?n=4`);
    expect(await r2.text()).toBe("part0;part1;part2;part3;");
  });

  test("weighted split 80/20 within a tolerance", async () => {
    const port = g.port(GW);
    const counts: Record<string, number> = {};
    for (let i = 0; i < 400; i++) {
      const r = await fetch(`http://127.0.0.1:${port}/split`);
      const name = ((await r.json()) as { name: string }).name;
      counts[name] = (counts[name] ?? 0) + 1;
    }
    expect(counts.web! / 400).toBeGreaterThan(0.72);
    expect(counts.web! / 400).toBeLessThan(0.88);
    expect(counts.canary! + counts.web!).toBe(400);
  });

  test("WebSocket upgrade passes through and echoes", async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${g.port(GW)}/ws`);
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      ws.onopen = () => {
        ws.send("one");
        ws.send("two");
      };
      ws.onmessage = (e) => {
        got.push(String(e.data));
        if (got.length === 2) resolve();
      };
      ws.onerror = () => reject(new Error("websocket error"));
      setTimeout(() => reject(new Error(`timeout, got ${got}`)), 3000);
    });
    ws.close();
    expect(got).toEqual(["web:one", "web:two"]);
  });
});

describe("bad input and failures", () => {
  test("404 for a host or path nobody routes, and the connection stays usable", async () => {
    const port = g.port(GW2);
    const { responses, closed } = await rawRequests(port, [get("/", "nobody.example"), get("/nothing", "shop.example"), get("/", "shop.example")]);
    expect(responses.map((r) => r.status)).toEqual([404, 404, 200]);
    expect(closed).toBe(false);
  });

  test("malformed request line gets 400 and a close; a huge head 431", async () => {
    const bad = await rawRequests(g.port(GW), ["GET /a b HTTP/1.1\r\nHost: x\r\n\r\n"]);
    expect(bad.responses[0]!.status).toBe(400);
    expect(bad.closed).toBe(true);
    const huge = await rawRequests(g.port(GW), [`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(40_000)}\r\n\r\n`]);
    expect(huge.responses[0]!.status).toBe(431);
    expect(huge.closed).toBe(true);
    const smuggle = await rawRequests(g.port(GW), ["POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"]);
    expect(smuggle.responses[0]!.status).toBe(400);
  });

  test("a dead endpoint fails over to a live one; all dead is 503 after the retries", async () => {
    const half = await fetch(`http://127.0.0.1:${g.port(GW)}/half`);
    expect(half.status).toBe(200);
    expect(((await half.json()) as { name: string }).name).toBe("web");
    const dead = await rawRequests(g.port(GW), [get("/dead"), get("/")]);
    expect(dead.responses[0]!.status).toBe(503);
    expect(dead.responses[1]!.status).toBe(200); // no body was sent: the connection carries on
  });

  test("a route timeout answers 504", async () => {
    const r = await fetch(`http://127.0.0.1:${g.port(GW)}/slow?ms=1000`);
    expect(r.status).toBe(504);
  });

  test("metrics count responses per route and class", () => {
    const snap = g.metrics.snapshot();
    expect(snap['gateway_route_responses_total{code="2xx",route="default/routes:web"}']).toBeGreaterThan(0);
    expect(snap['gateway_route_responses_total{code="5xx",route="default/routes:dead"}']).toBeGreaterThan(0);
    expect(snap['gateway_local_responses_total{code="400"}']).toBeGreaterThan(0);
  });
});

describe("timeouts, races and leaks (short deadlines)", () => {
  const PORT = somePort();
  let g2: TestGateway;
  let echo: TCPSocketListener<unknown>;
  let racy: TCPSocketListener<{ n: number }>;
  let racyConnections = 0;
  beforeAll(async () => {
    // A raw echo server (stands in for an h2c backend: the gateway must not touch the bytes).
    echo = Bun.listen<unknown>({ hostname: "127.0.0.1", port: 0, socket: { data(s, d) { s.write(d); } } });
    // Answers the first request of each connection and closes on the second without answering,
    // as a server whose keep-alive timeout fires just as a pooled connection is reused.
    racy = Bun.listen<{ n: number }>({
      hostname: "127.0.0.1",
      port: 0,
      data: { n: 0 },
      socket: {
        open(s) {
          s.data = { n: 0 };
          racyConnections++;
        },
        data(s) {
          if (s.data.n++ === 0) s.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok");
          else s.end();
        },
      },
    });
    const objs = [...service("echo", 80, [{ ip: "127.0.0.1", port: echo.port }]), ...service("racy", 80, [{ ip: "127.0.0.1", port: racy.port }]), ...backendService("web", web)];
    g2 = await startGateway(
      {
        Service: objs.filter((o) => o.kind === "Service"),
        EndpointSlice: objs.filter((o) => o.kind === "EndpointSlice"),
        Gateway: [gatewayObject("gw", [{ port: { number: PORT, protocol: "HTTP2" }, hosts: ["*"] }])],
        VirtualService: [
          virtualService("v", {
            hosts: ["*"],
            gateways: ["gw"],
            http: [
              { match: [{ uri: { prefix: "/racy" } }], route: [{ destination: { host: "racy" } }] },
              { match: [{ uri: { prefix: "/web" } }], route: [{ destination: { host: "web" } }] },
              { route: [{ destination: { host: "echo" } }] },
            ],
          }),
        ],
      },
      { timeouts: { headerMs: 300, idleMs: 600 } },
    );
  });
  afterAll(() => {
    g2?.stop();
    echo?.stop(true);
    racy?.stop(true);
  });

  test("a head sent slowly is cut after the header timeout with 408 (slowloris)", async () => {
    const t0 = Date.now();
    let got = "";
    let closedAt = 0;
    const s = await Bun.connect({ hostname: "127.0.0.1", port: g2.port(PORT), socket: { data(_s, d) { got += Buffer.from(d).toString(); }, close() { closedAt = Date.now(); } } });
    s.write("GET /web HTTP/1.1\r\n");
    for (let i = 0; i < 8 && closedAt === 0; i++) {
      await Bun.sleep(100);
      if (closedAt === 0) s.write(`X-Drip-${i}: a\r\n`);
    }
    await Bun.sleep(300);
    expect(got).toStartWith("HTTP/1.1 408 ");
    expect(closedAt).toBeGreaterThan(0);
    expect(closedAt - t0).toBeLessThan(1500);
    s.end();
  });

  test("an idle keep-alive connection is closed after the idle timeout", async () => {
    let closed = false;
    const s = await Bun.connect({ hostname: "127.0.0.1", port: g2.port(PORT), socket: { data() {}, close() { closed = true; } } });
    await Bun.sleep(1200);
    expect(closed).toBe(true);
    s.end();
  });

  test("h2c prior knowledge is passed through untouched to one backend", async () => {
    const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let got = "";
    const s = await Bun.connect({ hostname: "127.0.0.1", port: g2.port(PORT), socket: { data(_s, d) { got += Buffer.from(d).toString("latin1"); } } });
    s.write(preface + "\u0000\u0000\u0012frames");
    for (let i = 0; i < 50 && got.length < preface.length + 9; i++) await Bun.sleep(20);
    expect(got).toBe(preface + "\u0000\u0000\u0012frames");
    s.end();
  });

  test("a pooled connection the server closed without answering: the request goes again on a new one", async () => {
    const port = g2.port(PORT);
    const first = await rawRequests(port, [get("/racy/1")]);
    expect(first.responses[0]!.status).toBe(200);
    const before = racyConnections;
    const second = await rawRequests(port, [get("/racy/2")]);
    expect(second.responses[0]!.status).toBe(200);
    expect(racyConnections).toBe(before + 1);
    expect(g2.metrics.snapshot()["gateway_upstream_replays_total"]).toBeGreaterThanOrEqual(1);
  });

  test("garbage does not take the gateway down; clients that leave mid-response leak nothing", async () => {
    const port = g2.port(PORT);
    for (const junk of ["\u0000\u0001\u0002\r\n\r\n", "\u0016\u0003\u0001\u0000\u0005hello\r\n\r\n", "GET\r\n\r\n"]) {
      const r = await rawRequests(port, [junk]);
      expect(r.responses[0]!.status).toBe(400);
      expect(r.closed).toBe(true);
    }
    // 20 clients ask for a slow response and leave before it comes.
    const socks = await Promise.all(Array.from({ length: 20 }, () => Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } })));
    for (const s of socks) s.write("GET /web/slow?ms=300 HTTP/1.1\r\nHost: x\r\n\r\n");
    await Bun.sleep(50);
    for (const s of socks) s.terminate();
    await Bun.sleep(500);
    const ok = await fetch(`http://127.0.0.1:${port}/web/after`);
    expect(ok.status).toBe(200);
    await ok.text();
    await Bun.sleep(100);
    expect(g2.gateway.stats().activeConnections).toBeLessThanOrEqual(1);
  });
});
