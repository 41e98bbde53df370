// `edgemesh agent`: the DaemonSet. Wires the planes together on a real node: bridge device,
// metadata source (manifest folder or Kubernetes API), publisher, proxy listeners on the bridge
// IP, DNS, iptables interception, admin endpoint; and takes it all down again on SIGTERM.

import { joinHostPort, startAdminServer, startMetricsListener, type Readiness } from "../admin/index.ts";
import {
  createObjectStore,
  createManifestSource,
  createPublisher,
  loadConfig,
  requireNodeName,
  systemClock,
  type EdgeMeshAgentConfig,
  type RouteTable,
} from "../control/index.ts";
import { createDnsServer } from "../dns/index.ts";
import { requireRoot, ensureBridge, releaseBridge, raiseNofileLimit } from "../host/index.ts";
import { createInboundHandler, createProxy, createTunnelDialer, createZeroCopyIfSupported, zeroCopyFdBudget } from "../hotpath/index.ts";
import { createIptablesSyncer, createIptablesExec, detectIptablesBackend, removeEdgeMeshLeftoversAnywhere } from "../iptables/index.ts";
import { createLogger, type Logger } from "../log/index.ts";
import type { LogFlags } from "./args.ts";
import { applyLogConfig } from "./logging.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { createProcessMetrics } from "./build-info.ts";
import { edgeProxyOptions } from "./proxy-config.ts";
import { onShutdown } from "./shutdown.ts";
import { startMetadataSource } from "./metadata.ts";
import { startAgentSocks5 } from "./socks5.ts";
import { unbuiltWarnings } from "./unbuilt.ts";

/** Descriptors kept back for DNS, the API watch, the tunnel and logs. */
const RESERVED_FDS = 512;
/** A proxied TCP connection holds two descriptors (client + upstream). */
const FDS_PER_CONNECTION = 2;
const DRAIN_DEADLINE_MS = 5000;

export async function runAgent(configPath: string, flags: LogFlags = {}): Promise<number> {
  const log = createLogger({ component: "agent" });
  const metrics = createProcessMetrics();
  const config = loadConfig({ path: configPath, env: process.env, notice: (m) => log.warn(m) });
  applyLogConfig(config, flags);
  requireNodeName(config);
  requireRoot("edgemesh agent");

  const limits = raiseNofileLimit();
  // Adopted (zero-copy) connections hold 4 fds more; the budget keeps both within the soft limit.
  const { maxConnections, maxPairs } = zeroCopyFdBudget(limits.soft, RESERVED_FDS, FDS_PER_CONNECTION, config.modules.edgeProxy.maxConnections);
  for (const warning of unbuiltWarnings(config)) log.warn(warning);
  const m = config.modules;
  const modules = [m.edgeDNS.enable && "edgeDNS", m.edgeProxy.enable && "edgeProxy", m.edgeProxy.enable && m.edgeProxy.socks5Proxy.enable && "socks5Proxy", m.edgeTunnel.enable && "edgeTunnel"].filter(Boolean).join(",") || "none";
  log.info("starting", { node: config.nodeName, mode: config.kubeAPIConfig.mode, modules, nofile: limits.soft, maxConnections, zeroCopyPairs: maxPairs });

  const { bridgeDeviceName, bridgeDeviceIP } = config.commonConfig;
  const bridge = await ensureBridge(bridgeDeviceName, bridgeDeviceIP);
  // EdgeMesh leaves its edgemesh0 on every stop: used as it is, and left in place at our stop.
  if (!bridge.created) log.info("using the existing bridge device (not ours: it stays at stop)", { device: bridgeDeviceName, kind: bridge.kind, addedAddress: bridge.addedAddress });

  const store = createObjectStore();
  const metadata = await startMetadataSource(config, store, log, metrics);
  const publisher = createPublisher({
    store,
    compileOptions: { serviceFilterMode: config.modules.edgeProxy.serviceFilterMode, warn: (m) => log.warn(m) },
    clock: systemClock,
    log: log.child("control"),
    metrics,
  });
  publisher.flush();

  // The tunnel object exists before the proxy (its dialer is the proxy's remote) and starts
  // after the inbound handler is registered, so no CONNECT arrives unanswered.
  // Loaded only when enabled: the libp2p stack is ~40 MiB of RSS that a tunnel-less node
  // (a single-node site, or kube-proxy doing cross-node) should not carry.
  const tunnelModule = config.modules.edgeTunnel.enable ? await import("./tunnel.ts") : undefined;
  const tunnel = tunnelModule?.createAgentTunnel(config, log.child("tunnel"), metrics);
  const remote = tunnel ? createTunnelDialer({ tunnel, log: log.child("remote"), metrics }) : undefined;

  const proxyOptions = edgeProxyOptions(config);
  const proxy = config.modules.edgeProxy.enable
    ? createProxy({
        table: publisher,
        bindHost: bridgeDeviceIP,
        nodeName: config.nodeName,
        remote,
        maxConnections,
        ...proxyOptions,
        metrics,
        log: log.child("proxy"),
        zeroCopy: createZeroCopyIfSupported({ maxPairs, log: log.child("zerocopy"), metrics }),
      })
    : undefined;
  proxy?.start();
  const socks5 = proxy && config.modules.edgeProxy.socks5Proxy.enable ? startAgentSocks5(config, proxy, store, maxConnections, metrics, log.child("socks5")) : undefined;
  if (!proxy && config.modules.edgeProxy.socks5Proxy.enable) log.warn("modules.edgeProxy.socks5Proxy.enable is ignored: it needs modules.edgeProxy.enable");

  const inbound =
    tunnel && proxy
      ? createInboundHandler({
          proxy,
          table: publisher,
          nodeName: config.nodeName,
          udpIdleTimeoutMs: proxyOptions.udpIdleTimeoutMs,
          hostAddresses: socks5?.hostAddresses,
          log: log.child("inbound"),
          metrics,
        })
      : undefined;
  if (tunnel && inbound) tunnel.handleProxy(inbound.handle);
  // Secure mode: admit and address the peers whose IDs are published (from the first
  // connection on), and publish ours once the tunnel has it.
  const securePeers =
    tunnel && config.modules.edgeTunnel.identityMode === "secure" ? tunnelModule!.createSecurePeers(config, store, tunnel, log.child("peers"), metrics) : undefined;
  await tunnel?.start();
  await securePeers?.publish();
  if (securePeers) log.info("identityMode secure: EdgeMesh agents (and ours in compat mode) cannot publish a peer ID, so this agent refuses them; a cluster that still runs EdgeMesh agents must use identityMode compat until every node is migrated");
  const stopWatch = tunnel ? tunnelModule!.watchRelayNodes(configPath, tunnel, config, log.child("config")) : undefined;

  const dns = config.modules.edgeDNS.enable ? await startDns(config, publisher, bridgeDeviceIP, metrics, log) : undefined;

  const backend = await detectIptablesBackend();
  // A node switched from EdgeMesh: its killed agent's portals would catch what we do not proxy.
  await removeEdgeMeshLeftoversAnywhere(backend, bridgeDeviceIP, log.child("iptables"));
  const iptables = proxy
    ? createIptablesSyncer({ exec: createIptablesExec(backend), clock: systemClock, log: log.child("iptables"), metrics })
    : undefined;
  if (iptables && proxy) {
    const sync = () => iptables.update(publisher.current(), proxy.listeners());
    publisher.subscribe(sync);
    proxy.onListenersChanged(sync);
    iptables.start();
    sync();
  }

  const readiness = (): Readiness => {
    const m = metadata.status();
    const reasons = [...m.reasons];
    return { ready: m.ready, reasons };
  };
  const adminRoutes = {
    table: publisher,
    listeners: () => proxy?.listeners() ?? new Map(),
    readiness,
    metrics,
    peers: tunnel ? () => tunnel.peers() : undefined,
  };
  const admin = startAdminServer({ address: config.commonConfig.adminAddress, ...adminRoutes });
  // EdgeMesh's Prometheus port, for scrapes from other hosts (a hostNetwork pod has the node's
  // address): the read-only routes only. Honoured whether or not the tunnel runs.
  const mc = config.modules.edgeTunnel.metricConfig;
  const metricsListener = mc.enable ? startMetricsListener({ bindAddress: mc.bindAddress, port: mc.port, ...adminRoutes }) : undefined;
  log.info("running", {
    admin: `${admin.host}:${admin.port}`,
    metrics: metricsListener ? joinHostPort(metricsListener.host, metricsListener.port) : "off",
    iptables: backend,
    bridge: bridgeDeviceName,
    tunnel: tunnel ? tunnel.peerId : "off",
    socks5: socks5 ? socks5.server.port : "off",
  });

  return onShutdown(log, async () => {
    stopWatch?.();
    securePeers?.stop();
    socks5?.server.stop();
    await proxy?.drain(DRAIN_DEADLINE_MS);
    inbound?.stop();
    await tunnel?.stop().catch((err) => log.warn("tunnel stop failed", { error: (err as Error).message }));
    await iptables?.stop();
    dns?.stop();
    proxy?.stop();
    admin.stop();
    metricsListener?.stop();
    await metadata.stop();
    publisher.stop();
    await releaseBridge(bridgeDeviceName, bridgeDeviceIP, bridge);
  });
}

async function startDns(
  config: EdgeMeshAgentConfig,
  table: { current(): RouteTable; subscribe(l: (t: RouteTable) => void): () => void },
  host: string,
  metrics: MetricsRegistry,
  log: Logger,
) {
  const d = config.modules.edgeDNS;
  const dns = createDnsServer({
    table,
    listen: { host, port: d.listenPort },
    tcp: true,
    clusterDomain: d.clusterDomain,
    ttl: d.ttl,
    upstreams: [...d.upstreamResolvers],
    cacheSize: d.cacheSize,
    cacheDNS: d.cacheDNS.enable
      ? { enable: true, upstreamServers: [...d.cacheDNS.upstreamServers], autoDetect: d.cacheDNS.autoDetect, cacheTTL: d.cacheDNS.cacheTTL }
      : undefined,
    metrics,
    log,
  });
  await dns.start();
  return dns;
}
