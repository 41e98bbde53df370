// Our proxy (src/hotpath createProxy) behind a fixed RouteTable: one service port per bench
// backend, one endpoint each, on loopback as in dev mode. The table is built by hand (not by
// compile()) so the macro numbers measure the data plane only.

// table.ts, not control/index.ts: the index also loads the config and manifest code and js-yaml
// (~10 MiB of RSS), which would be charged to the data plane in rss.* (the hot path itself
// imports control's types only).
import { deepFreeze, portKey, type RouteTable, type ServicePort, type TableSource } from "../../src/control/table.ts";
import { createLogger } from "../../src/log/index.ts";
import { createMetrics } from "../../src/metrics/index.ts";
import { createProxy, createZeroCopyIfSupported } from "../../src/hotpath/index.ts";
import type { Backend } from "./naive-forwarder.ts";

export function benchTable(backends: readonly Backend[]): RouteTable {
  const ports: ServicePort[] = backends.map((b) => ({
    key: portKey("bench", b.name, 80, b.protocol),
    namespace: "bench",
    name: b.name,
    portName: "",
    port: 80,
    protocol: b.protocol,
    clusterIPs: [],
    nodePort: 0,
    externalIPs: [],
    policy: { kind: "ROUND_ROBIN" },
    affinity: { clientIP: false, timeoutSeconds: 10_800 },
    endpoints: [{ ip: b.host, port: b.port, node: "bench-node", ready: true, hostname: "", zone: "" }],
  }));
  ports.sort((a, b) => (a.key < b.key ? -1 : 1));
  const byKey: Record<string, ServicePort> = Object.create(null);
  for (const p of ports) byKey[p.key] = p;
  return deepFreeze({
    version: 1,
    compiledAt: 0,
    ports,
    byKey,
    services: backends.map((b) => ({
      namespace: "bench",
      name: b.name,
      type: "ClusterIP" as const,
      clusterIPs: [],
      externalName: "",
      ports: [{ name: "", port: 80, protocol: b.protocol }],
      endpoints: [],
    })),
  });
}

/**
 * `zeroCopy` (default on, as the agent ships): elephant flows go to the splice(2) engine. The
 * heap probe turns it off: it counts objects per chunk forwarded through JS, and an adopted flow
 * forwards nothing through JS.
 */
export async function startEdgemesh(backends: readonly Backend[], opts: { zeroCopy?: boolean; native?: boolean } = {}) {
  const table = benchTable(backends);
  const source: TableSource = { current: () => table, subscribe: () => () => {} };
  const metrics = createMetrics();
  const maxConnections = 10_000;
  const zeroCopy =
    opts.zeroCopy === false
      ? undefined
      : createZeroCopyIfSupported({ maxPairs: Math.min(1024, Math.floor(maxConnections / 8)), log: createLogger({ level: "warn" }), metrics, native: opts.native });
  const proxy = createProxy({
    table: source,
    bindHost: "127.0.0.1",
    nodeName: "bench-node",
    maxConnections,
    zeroCopy,
    maxConnectionsPerPort: 0,
    udpIdleTimeoutMs: 30_000,
    consistentHash: { partitionCount: 100, replicationFactor: 10, load: 1.25 },
    metrics,
    log: createLogger({ level: "warn", component: "bench-proxy" }),
  });
  proxy.start();
  // UDP listeners bind asynchronously: wait (bounded) until every service port has one.
  const deadline = Date.now() + 10_000;
  while (proxy.listeners().size < backends.length) {
    if (Date.now() > deadline) throw new Error(`proxy has ${proxy.listeners().size} of ${backends.length} listeners after 10 s`);
    await Bun.sleep(10);
  }
  const listeners = new Map<string, { port: number; protocol: string }>();
  for (const b of backends) {
    const info = proxy.listeners().get(portKey("bench", b.name, 80, b.protocol));
    if (!info) throw new Error(`proxy has no listener for ${b.name}`);
    listeners.set(b.name, { port: info.port, protocol: info.protocol });
  }
  return {
    listeners,
    stop: () => proxy.stop(),
    metrics: () => ({ ...metrics.snapshot(), ...proxy.stats() }) as Record<string, number>,
  };
}
