// modules.edgeProxy.socks5Proxy on the agent: the SOCKS5 listener on the bridge IP, fed with the
// Node objects of the store, and the set of this node's own addresses that the inbound tunnel
// handler then lets peers reach (the far side of another node's SOCKS5 CONNECT).

import type { EdgeMeshAgentConfig, ObjectStore } from "../control/index.ts";
import { createHostAddresses, createSocks5Server, EMPTY_DIRECTORY, nodeDirectory, type NodeDirectory, type Proxy, type Socks5Server } from "../hotpath/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { listenFailure } from "./startup.ts";

export interface AgentSocks5 {
  readonly server: Socks5Server;
  readonly hostAddresses: { has(ip: string): boolean };
}

/** Start the listener; throws (naming the key) when its address cannot be bound. */
export function startAgentSocks5(
  config: EdgeMeshAgentConfig,
  proxy: Proxy,
  store: ObjectStore,
  maxConnections: number,
  metrics: MetricsRegistry,
  log: Logger,
): AgentSocks5 {
  const host = config.commonConfig.bridgeDeviceIP;
  const { listenPort } = config.modules.edgeProxy.socks5Proxy;
  // The store copies a kind's map on every write to it: same map, same directory.
  let seen: unknown;
  let dir: NodeDirectory = EMPTY_DIRECTORY;
  const nodes = (): NodeDirectory => {
    const map = store.snapshot().Node;
    if (map !== seen) {
      seen = map;
      dir = nodeDirectory(map.values());
    }
    return dir;
  };
  const server = createSocks5Server({
    host,
    port: listenPort,
    nodeName: config.nodeName,
    proxy,
    nodes,
    maxConnections,
    maxConnectionsPerPort: config.modules.edgeProxy.maxConnectionsPerPort,
    metrics,
    log,
  });
  try {
    server.start();
  } catch (err) {
    const failure = listenFailure(err, { what: "the SOCKS5 proxy", key: "modules.edgeProxy.socks5Proxy.listenPort", host, port: listenPort, protocols: ["tcp"] });
    if (failure !== err) throw failure;
    throw new Error(`modules.edgeProxy.socks5Proxy.listenPort: cannot listen on ${host}:${listenPort}: ${(err as Error).message}`);
  }
  log.info("socks5 proxy listening", { address: `${host}:${server.port}` });
  return { server, hostAddresses: createHostAddresses({ nodeName: config.nodeName, nodes, exclude: [host] }) };
}
