// A gateway on loopback for integration tests: an object store fed by the test (Services,
// EndpointSlices, Gateways, VirtualServices, Secrets), the real publishers, the agent's proxy
// without listeners, the gateway data plane, and Bun HTTP backends that report who served a
// request and on which connection. Plus a raw HTTP/1.1 client for keep-alive and pipelining.

import type { Server, ServerWebSocket } from "bun";
import { createGatewayPublisher, staticAddresses, type GatewayPublisher } from "../../src/control/gateway/index.ts";
import { createObjectStore, createPublisher, type KubeObject, type ObjectStore, type Publisher } from "../../src/control/index.ts";
import { createGateway, type Gateway, type GatewayOptions } from "../../src/gateway/index.ts";
import { createProxy, type Proxy } from "../../src/hotpath/index.ts";
import type { ZeroCopyEngine } from "../../src/hotpath/zerocopy/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";

export interface Backend {
  name: string;
  ip: string;
  port: number;
  server: Server<unknown>;
  /** Remote ports of connections that carried requests (pooling shows as few of them). */
  connections: Set<number>;
  requests: number;
  stop(): void;
}

/** An HTTP backend on ip:0: /ws echoes WebSocket messages, /slow?ms=N waits, /chunked streams, POST echoes. */
export function startBackend(name: string, ip = "127.0.0.1"): Backend {
  const connections = new Set<number>();
  const b: Partial<Backend> = { name, ip, connections, requests: 0 };
  const server = Bun.serve({
    hostname: ip,
    port: 0,
    async fetch(req, srv) {
      const url = new URL(req.url);
      const remote = srv.requestIP(req);
      if (remote) connections.add(remote.port);
      b.requests!++;
      if (url.pathname === "/ws" && srv.upgrade(req, { data: undefined })) return undefined as unknown as Response;
      if (url.pathname.startsWith("/slow")) await Bun.sleep(Number(url.searchParams.get("ms") ?? 100));
      if (url.pathname.startsWith("/chunked")) {
        const parts = Number(url.searchParams.get("n") ?? 3);
        const stream = new ReadableStream({
          async pull(ctl) {
            for (let i = 0; i < parts; i++) {
              ctl.enqueue(new TextEncoder().encode(`part${i};`));
              await Bun.sleep(5);
            }
            ctl.close();
          },
        });
        return new Response(stream, { headers: { "x-backend": name } });
      }
      if (req.method === "POST") {
        const body = new Uint8Array(await req.arrayBuffer());
        let sum = 0;
        for (const x of body) sum = (sum + x) % 65521;
        return Response.json({ name, length: body.length, sum }, { headers: { "x-backend": name } });
      }
      const headers: Record<string, string> = {};
      req.headers.forEach((v, k) => (headers[k] = v));
      return Response.json({ name, path: url.pathname + url.search, headers }, { headers: { "x-backend": name, "x-drop-me": "1" } });
    },
    websocket: {
      message(ws: ServerWebSocket<unknown>, msg) {
        ws.send(typeof msg === "string" ? `${name}:${msg}` : msg);
      },
    },
  });
  b.server = server as Server<unknown>;
  b.port = server.port!;
  b.stop = () => server.stop(true);
  return b as Backend;
}

export function service(name: string, port: number, endpoints: { ip: string; port: number; node?: string }[], namespace = "default"): KubeObject[] {
  return [
    { apiVersion: "v1", kind: "Service", metadata: { name, namespace }, spec: { clusterIP: "10.96.0.50", ports: [{ name: "http", port, protocol: "TCP", targetPort: "http" }] } },
    // One slice per endpoint: each may have its own target port (the named port "http").
    ...endpoints.map((e, i) => ({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `${name}-${i}`, namespace, labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      ports: [{ name: "http", port: e.port, protocol: "TCP" }],
      endpoints: [{ addresses: [e.ip], conditions: { ready: true }, nodeName: e.node ?? "gw-node" }],
    })),
  ];
}

/** One endpoint per backend, each with its own port: a Service per backend is simplest. */
export function backendService(name: string, b: Backend, namespace = "default"): KubeObject[] {
  return service(name, 80, [{ ip: b.ip, port: b.port }], namespace);
}

export function gatewayObject(name: string, servers: unknown[], namespace = "default"): KubeObject {
  return { apiVersion: "networking.istio.io/v1beta1", kind: "Gateway", metadata: { name, namespace }, spec: { servers } };
}

export function virtualService(name: string, spec: unknown, namespace = "default"): KubeObject {
  return { apiVersion: "networking.istio.io/v1beta1", kind: "VirtualService", metadata: { name, namespace }, spec };
}

export function tlsSecret(name: string, cert: string, key: string, ca?: string, namespace = "default"): KubeObject {
  const data: Record<string, string> = { "tls.crt": Buffer.from(cert).toString("base64"), "tls.key": Buffer.from(key).toString("base64") };
  if (ca) data["ca.crt"] = Buffer.from(ca).toString("base64");
  return { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name, namespace }, data };
}

export interface TestGateway {
  store: ObjectStore;
  routes: Publisher;
  tables: GatewayPublisher;
  proxy: Proxy;
  gateway: Gateway;
  metrics: MetricsRegistry;
  log: ReturnType<typeof createMemoryLogger>;
  /** The bound port for a Gateway port number (on 127.0.0.1). */
  port(gatewayPort: number): number;
  /** Replace objects of the given kinds and wait until both tables are republished. */
  apply(objects: Partial<Record<string, KubeObject[]>>): Promise<void>;
  stop(): void;
}

/** A free-ish high port for a Gateway server (the gateway falls back to any free port). */
export function somePort(): number {
  return 20000 + Math.floor(Math.random() * 20000);
}

/**
 * `zeroCopy` gives the proxy a splice(2)/flow-loop engine made with the gateway's metrics and log
 * (as src/main/gateway.ts does); without it the proxy splices in JS only.
 */
export async function startGateway(
  objects: Partial<Record<string, KubeObject[]>>,
  options: Partial<GatewayOptions> = {},
  zeroCopy?: (metrics: MetricsRegistry, log: ReturnType<typeof createMemoryLogger>) => ZeroCopyEngine | undefined,
): Promise<TestGateway> {
  const store = createObjectStore();
  const log = createMemoryLogger();
  const metrics = createMetrics();
  const routes = createPublisher({ store, compileOptions: { serviceFilterMode: "FilterIfLabelExists", warn: (m) => log.warn(m) }, log, minIntervalMs: 10 });
  const tables = createGatewayPublisher({ store, addresses: staticAddresses(["127.0.0.1"]), compileOptions: { clusterDomain: "cluster.local", warn: (m) => log.warn(m) }, log, minIntervalMs: 10 });
  store.replace(objects as never);
  routes.flush();
  tables.flush();
  const proxy = createProxy({ table: routes, bindHost: "127.0.0.1", listen: false, nodeName: "gw-node", maxConnections: 4096, maxConnectionsPerPort: 0, udpIdleTimeoutMs: 30_000, consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 }, metrics, log, zeroCopy: zeroCopy?.(metrics, log) });
  proxy.start();
  const gateway = createGateway({
    gateway: tables,
    routes,
    proxy,
    nodeName: "gw-node",
    consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 },
    maxConnections: 4096,
    metrics,
    log,
    freePortFallback: true,
    ...options,
  });
  gateway.start();
  await waitForListeners(gateway, tables.current().listeners.length);
  return {
    store,
    routes,
    tables,
    proxy,
    gateway,
    metrics,
    log,
    port(gp) {
      for (const info of gateway.listeners().values()) if (info.port === gp && info.boundPort > 0) return info.boundPort;
      throw new Error(`no listener for gateway port ${gp}: ${JSON.stringify([...gateway.listeners()])}`);
    },
    async apply(objs) {
      const rv = routes.current().version;
      const gv = tables.current().version;
      store.replace(objs as never);
      routes.flush();
      tables.flush();
      if (routes.current().version === rv && tables.current().version === gv) throw new Error("nothing republished");
      await waitForListeners(gateway, tables.current().listeners.length);
    },
    stop() {
      gateway.stop();
      proxy.stop();
      routes.stop();
      tables.stop();
    },
  };
}

async function waitForListeners(g: Gateway, n: number): Promise<void> {
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    const ready = [...g.listeners().values()].filter((l) => l.boundPort > 0).length;
    if (ready >= n) return;
    await Bun.sleep(5);
  }
  throw new Error(`listeners not up: ${JSON.stringify([...g.listeners()])}`);
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * Sends `requests` on ONE connection (all at once when pipelined, else one after another's
 * response) and reads `requests.length` responses framed by Content-Length. Also reports whether
 * the server closed the connection afterwards.
 */
export async function rawRequests(port: number, requests: string[], o: { pipelined?: boolean; timeoutMs?: number; host?: string } = {}): Promise<{ responses: RawResponse[]; closed: boolean }> {
  let buffered = "";
  let closed = false;
  let wake: (() => void) | null = null;
  const sock = await Bun.connect({
    hostname: o.host ?? "127.0.0.1",
    port,
    socket: {
      data(_s, d) {
        buffered += Buffer.from(d).toString("latin1");
        wake?.();
      },
      close() {
        closed = true;
        wake?.();
      },
      error() {},
    },
  });
  const responses: RawResponse[] = [];
  const deadline = Date.now() + (o.timeoutMs ?? 5000);
  const next = async (): Promise<RawResponse | null> => {
    for (;;) {
      const r = parseOne();
      if (r !== null) return r;
      if (closed || Date.now() > deadline) return null;
      await new Promise<void>((res) => {
        wake = res;
        setTimeout(res, 50);
      });
      wake = null;
    }
  };
  const parseOne = (): RawResponse | null => {
    const end = buffered.indexOf("\r\n\r\n");
    if (end < 0) return null;
    const lines = buffered.slice(0, end).split("\r\n");
    const status = Number(lines[0]!.split(" ")[1]);
    const headers: Record<string, string> = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const len = Number(headers["content-length"] ?? 0);
    if (buffered.length < end + 4 + len) return null;
    const body = buffered.slice(end + 4, end + 4 + len);
    buffered = buffered.slice(end + 4 + len);
    return { status, headers, body };
  };
  if (o.pipelined) {
    sock.write(requests.join(""));
    for (let i = 0; i < requests.length; i++) {
      const r = await next();
      if (r === null) break;
      responses.push(r);
    }
  } else {
    for (const req of requests) {
      sock.write(req);
      const r = await next();
      if (r === null) break;
      responses.push(r);
    }
  }
  // Give a closing server a moment to show it.
  const until = Date.now() + 100;
  while (!closed && Date.now() < until) await Bun.sleep(10);
  const wasClosed = closed;
  sock.end();
  return { responses, closed: wasClosed };
}
