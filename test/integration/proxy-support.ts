// Shared helpers of the proxy integration tests (test/integration/proxy*.test.ts, zerocopy.test.ts):
// a hand-built frozen RouteTable, a tiny TableSource, a proxy wired to fresh metrics and a memory
// logger, a backpressure-aware TCP echo server, and fd counting for leak checks.

import type { Socket, TCPSocketListener } from "bun";
import { deepFreeze, portKey, type Endpoint, type LbPolicy, type Protocol, type RouteTable, type ServicePort, type TableSource } from "../../src/control/index.ts";
import { createProxy, type Proxy, type ProxyOptions } from "../../src/hotpath/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { createMetrics, type MetricsRegistry } from "../../src/metrics/index.ts";

export interface PortSpec {
  name: string;
  port?: number;
  protocol?: Protocol;
  policy?: LbPolicy;
  affinitySeconds?: number;
  endpoints: { ip?: string; port: number; node?: string }[];
}

export function servicePort(spec: PortSpec): ServicePort {
  const protocol = spec.protocol ?? "TCP";
  const port = spec.port ?? 80;
  const endpoints: Endpoint[] = spec.endpoints.map((e) => ({
    ip: e.ip ?? "127.0.0.1",
    port: e.port,
    node: e.node ?? "node-a",
    ready: true,
    hostname: "",
    zone: "",
  }));
  return {
    key: portKey("default", spec.name, port, protocol),
    namespace: "default",
    name: spec.name,
    portName: "",
    port,
    protocol,
    clusterIPs: [],
    nodePort: 0,
    externalIPs: [],
    policy: spec.policy ?? { kind: "ROUND_ROBIN" },
    affinity: { clientIP: spec.affinitySeconds !== undefined, timeoutSeconds: spec.affinitySeconds ?? 10800 },
    endpoints,
  };
}

let version = 0;
export function makeTable(specs: PortSpec[]): RouteTable {
  const ports = specs.map(servicePort).sort((a, b) => (a.key < b.key ? -1 : 1));
  const byKey: Record<string, ServicePort> = Object.create(null);
  for (const p of ports) byKey[p.key] = p;
  return deepFreeze({ version: ++version, compiledAt: Date.now(), ports, byKey, services: [] });
}

export interface TestTable extends TableSource {
  publish(t: RouteTable): void;
}

export function tableSource(initial: RouteTable): TestTable {
  let current = initial;
  const subs = new Set<(t: RouteTable) => void>();
  return {
    current: () => current,
    subscribe(fn) {
      subs.add(fn);
      return () => subs.delete(fn);
    },
    publish(t) {
      current = t;
      for (const fn of subs) fn(t);
    },
  };
}

export interface Harness {
  proxy: Proxy;
  table: TestTable;
  metrics: MetricsRegistry;
  /** host:port of a service port's listener (waits for UDP binding). */
  addr(name: string, port?: number, protocol?: Protocol): Promise<{ host: string; port: number }>;
}

export function startProxy(specs: PortSpec[], extra: Partial<ProxyOptions> = {}): Harness {
  const table = tableSource(makeTable(specs));
  const metrics = createMetrics();
  const proxy = createProxy({
    table,
    bindHost: "127.0.0.1",
    nodeName: "node-a",
    maxConnections: 10_000,
    maxConnectionsPerPort: 0,
    udpIdleTimeoutMs: 30_000,
    consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 },
    metrics,
    log: createMemoryLogger(),
    ...extra,
  });
  proxy.start();
  return {
    proxy,
    table,
    metrics,
    async addr(name, port = 80, protocol = "TCP") {
      const key = portKey("default", name, port, protocol);
      for (let i = 0; i < 200; i++) {
        const l = proxy.listeners().get(key);
        if (l) return { host: l.host, port: l.port };
        await Bun.sleep(5);
      }
      throw new Error(`no listener for ${key}`);
    },
  };
}

export interface EchoState {
  pending: Uint8Array[];
  fin: boolean;
}

/**
 * TCP echo on 127.0.0.1 that respects backpressure (keeps the unsent part and pauses until
 * drain) and passes the client's FIN on only after every byte was echoed. `tag` is written
 * first on each connection, to tell endpoints apart. The caller stops it.
 */
export function echoServer(tag = ""): TCPSocketListener<EchoState> {
  return Bun.listen<EchoState>({
    hostname: "127.0.0.1",
    port: 0,
    allowHalfOpen: true,
    data: { pending: [], fin: false },
    socket: {
      binaryType: "uint8array",
      open(s) {
        s.data = { pending: [], fin: false };
        if (tag) s.write(tag);
      },
      data(s, buf) {
        const st = s.data;
        if (st.pending.length > 0) return void st.pending.push(buf);
        const n = s.write(buf);
        if (n < buf.length) {
          st.pending.push(buf.subarray(Math.max(n, 0)));
          s.pause();
        }
      },
      drain(s) {
        const st = s.data;
        while (st.pending.length > 0) {
          const b = st.pending[0]!;
          const n = s.write(b);
          if (n < b.length) return void (st.pending[0] = b.subarray(Math.max(n, 0)));
          st.pending.shift();
        }
        if (st.fin) s.shutdown();
        else s.resume();
      },
      end(s) {
        s.data.fin = true;
        if (s.data.pending.length === 0) s.shutdown();
      },
      close() {},
      error() {},
    },
  });
}

export function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, Math.min(n, i + 65536)));
  return out;
}

/** Polls `cond` every 5 ms; throws naming `what` once `ms` have passed. */
export async function until(cond: () => boolean, ms = 5000, what = "condition"): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(5);
  }
}

export function openFds(): number {
  return [...new Bun.Glob("*").scanSync({ cwd: "/proc/self/fd", onlyFiles: false })].length;
}

/** fd count once it stopped changing (sockets of an earlier test may still be closing). */
export async function settledFds(): Promise<number> {
  let last = openFds();
  for (let i = 0; i < 100; i++) {
    await Bun.sleep(20);
    const now = openFds();
    if (now === last) return now;
    last = now;
  }
  return last;
}

/** Runs a test file's cleanup steps, last registered first; one that throws does not stop the rest. */
export function runCleanups(fns: (() => void)[]): void {
  for (const fn of fns.splice(0).reverse()) {
    try {
      fn();
    } catch {}
  }
}

export interface Pusher {
  socket: Socket<undefined>;
  received: () => number;
  hash: () => string;
  /** Resolves on close, with the error if it was reset. */
  closed: Promise<Error | undefined>;
  /** Resolves when `total` bytes came back. */
  echoed: Promise<void>;
}

/** Sends `data` (with backpressure), then FIN if `fin`; hashes what comes back. */
export async function push(port: number, data: Uint8Array, fin: boolean): Promise<Pusher> {
  const hasher = new Bun.CryptoHasher("sha256");
  let received = 0;
  let off = 0;
  let closedWith!: (e: Error | undefined) => void;
  let echoedAll!: () => void;
  const closed = new Promise<Error | undefined>((r) => (closedWith = r));
  const echoed = new Promise<void>((r) => (echoedAll = r));
  const pump = (s: Socket<undefined>) => {
    while (off < data.length) {
      const len = Math.min(1 << 20, data.length - off);
      const n = s.write(data, off, len);
      if (n > 0) off += n;
      if (n < len) return;
    }
    if (fin) s.shutdown();
  };
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    allowHalfOpen: true,
    socket: {
      binaryType: "uint8array",
      open: pump,
      drain: pump,
      data(_s, b) {
        hasher.update(b);
        received += b.length;
        if (received === data.length) echoedAll();
      },
      close(_s, err) {
        closedWith(err);
        echoedAll();
      },
    },
  });
  return { socket, received: () => received, hash: () => hasher.digest("hex"), closed, echoed };
}
