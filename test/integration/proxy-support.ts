// Shared helpers of the proxy integration tests (test/integration/proxy*.test.ts): a hand-built
// frozen RouteTable, a tiny TableSource, and a proxy wired to fresh metrics and a memory logger.

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
