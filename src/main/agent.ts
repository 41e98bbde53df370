// `edgemesh agent`: the DaemonSet. Wires the planes together on a real node: bridge device,
// metadata source (manifest folder or Kubernetes API), publisher, proxy listeners on the bridge
// IP, DNS, iptables interception, admin endpoint; and takes it all down again on SIGTERM.
// Before it creates anything it checks root and capabilities; a start that fails later undoes
// every step that succeeded (startup.ts) and reports one line naming the cause and the fix.

import { joinHostPort, parseHostPort, peersJson, startAdminServer, startMetricsListener, type Readiness } from "../admin/index.ts";
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
import { requireCapabilities, requireRoot, ensureBridge, releaseBridge, raiseNofileLimit, unprivilegedPortStart, type CapNeed } from "../host/index.ts";
import { createInboundHandler, createProxy, createTunnelDialer, createZeroCopyIfSupported, zeroCopyFdBudget } from "../hotpath/index.ts";
import {
  createIptablesSyncer,
  createIptablesExec,
  detectIptablesBackend,
  removeEdgeMeshLeftoversAnywhere,
  type IptablesBackend,
  type IptablesSyncer,
} from "../iptables/index.ts";
import { createLogger, type Logger } from "../log/index.ts";
import { effectiveMetricConfig, type LogFlags, type MetricsFlags } from "./args.ts";
import { applyLogConfig } from "./logging.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import { createProcessMetrics } from "./build-info.ts";
import { edgeProxyOptions } from "./proxy-config.ts";
import { onShutdown } from "./shutdown.ts";
import { startMetadataSource } from "./metadata.ts";
import { startAgentSocks5 } from "./socks5.ts";
import { createUndoStack, listenFailure, type UndoStack } from "./startup.ts";
import { unbuiltWarnings } from "./unbuilt.ts";

/** Descriptors kept back for DNS, the API watch, the tunnel and logs. */
const RESERVED_FDS = 512;
/** A proxied TCP connection holds two descriptors (client + upstream). */
const FDS_PER_CONNECTION = 2;
const DRAIN_DEADLINE_MS = 5000;
/** Longest wait for the first iptables apply before the agent reports running. */
const FIRST_APPLY_WAIT_MS = 5000;

export async function runAgent(configPath: string, flags: LogFlags & MetricsFlags = {}): Promise<number> {
  const log = createLogger({ component: "agent" });
  const undo = createUndoStack(log);
  let stop: () => Promise<void>;
  try {
    stop = await startAgent(configPath, flags, log, undo);
  } catch (err) {
    await undo.run();
    throw err;
  }
  return onShutdown(log, stop);
}

/** What the agent needs beyond root, for this config. */
export function capabilityNeeds(config: EdgeMeshAgentConfig, unprivilegedFrom: number, backend?: IptablesBackend): CapNeed[] {
  const m = config.modules;
  const cni = m.edgeCNI.enable ? ", the Edge CNI's TUN device and its routes" : "";
  const needs: CapNeed[] = [{ cap: "NET_ADMIN", why: `the edgemesh0 device, iptables rules and conntrack${cni}` }];
  const low = [
    m.edgeDNS.enable && m.edgeDNS.listenPort < unprivilegedFrom && `modules.edgeDNS.listenPort ${m.edgeDNS.listenPort}`,
    m.edgeProxy.enable && m.edgeProxy.socks5Proxy.enable && m.edgeProxy.socks5Proxy.listenPort < unprivilegedFrom && `modules.edgeProxy.socks5Proxy.listenPort ${m.edgeProxy.socks5Proxy.listenPort}`,
    m.edgeTunnel.enable && m.edgeTunnel.listenPort < unprivilegedFrom && `modules.edgeTunnel.listenPort ${m.edgeTunnel.listenPort}`,
  ].filter(Boolean);
  if (low.length > 0) needs.push({ cap: "NET_BIND_SERVICE", why: `listening on ${low.join(", ")}` });
  if (backend === "legacy") needs.push({ cap: "NET_RAW", why: "legacy iptables talks to the kernel through a raw socket" });
  return needs;
}

/** Everything up to "running"; returns the stop sequence. Each step that creates something
 * registers its undo, which runAgent runs if a later step throws. */
async function startAgent(configPath: string, flags: LogFlags & MetricsFlags, log: Logger, undo: UndoStack): Promise<() => Promise<void>> {
  const metrics = createProcessMetrics();
  const config = loadConfig({ path: configPath, env: process.env, notice: (m) => log.warn(m) });
  applyLogConfig(config, flags);
  requireNodeName(config);
  requireRoot("edgemesh agent");
  requireCapabilities("edgemesh agent", capabilityNeeds(config, unprivilegedPortStart()));
  // Read-only (it only lists rules), and before anything is created: legacy needs NET_RAW too.
  const backend = await detectIptablesBackend();
  if (backend === "legacy") requireCapabilities("edgemesh agent", capabilityNeeds(config, unprivilegedPortStart(), backend));

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
  undo.add(`device ${bridgeDeviceName}`, () => releaseBridge(bridgeDeviceName, bridgeDeviceIP, bridge));

  const store = createObjectStore();
  const metadata = await startMetadataSource(config, store, log, metrics);
  undo.add("metadata source", () => metadata.stop());
  // Edge CNI (loaded only when enabled): its compile inputs go into every table.
  const cniModule = config.modules.edgeCNI.enable ? await import("./cni.ts") : undefined;
  const publisher = createPublisher({
    store,
    compileOptions: { serviceFilterMode: config.modules.edgeProxy.serviceFilterMode, warn: (m) => log.warn(m), cni: cniModule?.cniCompileOptions(config) },
    clock: systemClock,
    log: log.child("control"),
    metrics,
  });
  publisher.flush();
  undo.add("publisher", () => publisher.stop());

  // The tunnel object exists before the proxy (its dialer is the proxy's remote) and starts
  // after the inbound handler is registered, so no CONNECT arrives unanswered.
  // Loaded only when enabled: the libp2p stack is ~40 MiB of RSS that a tunnel-less node
  // (a single-node site, or kube-proxy doing cross-node) should not carry.
  const tunnelModule = config.modules.edgeTunnel.enable ? await loadTunnelModule() : undefined;
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
  if (proxy) undo.add("proxy listeners", () => proxy.stop());
  const socks5 = proxy && config.modules.edgeProxy.socks5Proxy.enable ? startAgentSocks5(config, proxy, store, maxConnections, metrics, log.child("socks5")) : undefined;
  if (socks5) undo.add("socks5 listener", () => socks5.server.stop());
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
  if (inbound) undo.add("inbound handler", () => inbound.stop());
  // Before tunnel.start(): the CNI stream handler is registered from the first connection on.
  const cni = cniModule && tunnel ? await cniModule.startCni({ config, table: publisher, tunnel, log: log.child("cni"), metrics }) : undefined;
  if (cni) undo.add("Edge CNI (TUN device)", () => cni.stop());
  // Secure mode: admit and address the peers whose IDs are published (from the first
  // connection on), and publish ours once the tunnel has it.
  const securePeers =
    tunnel && config.modules.edgeTunnel.identityMode === "secure" ? tunnelModule!.createSecurePeers(config, store, tunnel, log.child("peers"), metrics) : undefined;
  if (securePeers) undo.add("secure-mode peers", () => securePeers.stop());
  if (tunnel) {
    // Registered before start: a start that fails half way (a taken port) may hold sockets.
    undo.add("tunnel", () => tunnel.stop());
    const t = config.modules.edgeTunnel;
    await tunnel.start().catch((err) => {
      throw listenFailure(err, { what: "the tunnel", key: "modules.edgeTunnel.listenPort", host: "0.0.0.0", port: t.listenPort, protocols: t.transport === "quic" ? ["udp"] : ["tcp"] });
    });
  }
  await securePeers?.publish();
  if (securePeers) log.info("identityMode secure: EdgeMesh agents (and ours in compat mode) cannot publish a peer ID, so this agent refuses them; a cluster that still runs EdgeMesh agents must use identityMode compat until every node is migrated");
  const stopWatch = tunnel ? tunnelModule!.watchRelayNodes(configPath, tunnel, config, log.child("config")) : undefined;
  if (stopWatch) undo.add("config watch", stopWatch);

  const dns = config.modules.edgeDNS.enable ? await startDns(config, publisher, bridgeDeviceIP, metrics, log) : undefined;
  if (dns) undo.add("DNS", () => dns.stop());

  // A node switched from EdgeMesh: its killed agent's portals would catch what we do not proxy.
  await removeEdgeMeshLeftoversAnywhere(backend, bridgeDeviceIP, log.child("iptables"));
  const iptables = proxy
    ? createIptablesSyncer({ exec: createIptablesExec(backend), clock: systemClock, log: log.child("iptables"), metrics })
    : undefined;
  // Removes our chains and jumps, whatever the first sync got to apply.
  if (iptables) undo.add("iptables chains", () => iptables.stop());
  if (iptables && proxy) {
    const sync = () => iptables.update(publisher.current(), proxy.listeners());
    publisher.subscribe(sync);
    proxy.onListenersChanged(sync);
    iptables.start();
    sync();
    // "running" means interception is in place (and a start that fails below has rules to undo).
    await firstApply(iptables);
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
    peers: tunnel ? () => peersJson(tunnel.peers(), { out: remote?.udpFlowsTo, in: inbound?.udpFlowsOf }) : undefined,
  };
  let admin: ReturnType<typeof startAdminServer>;
  try {
    admin = startAdminServer({ address: config.commonConfig.adminAddress, ...adminRoutes });
  } catch (err) {
    const { host, port } = parseHostPort(config.commonConfig.adminAddress, "commonConfig.adminAddress");
    throw listenFailure(err, { what: "the admin endpoint", key: "commonConfig.adminAddress", host, port, protocols: ["tcp"] });
  }
  undo.add("admin endpoint", () => admin.stop());
  // EdgeMesh's Prometheus port, for scrapes from other hosts (a hostNetwork pod has the node's
  // address): the read-only routes only. Honoured whether or not the tunnel runs.
  const mc = effectiveMetricConfig(config.modules.edgeTunnel.metricConfig, flags);
  let metricsListener: ReturnType<typeof startMetricsListener> | undefined;
  try {
    metricsListener = mc.enable ? startMetricsListener({ bindAddress: mc.bindAddress, port: mc.port, ...adminRoutes }) : undefined;
  } catch (err) {
    throw listenFailure(err, { what: "the metrics listener", key: mc.key, host: mc.bindAddress, port: mc.port, protocols: ["tcp"] });
  }
  log.info("running", {
    admin: `${admin.host}:${admin.port}`,
    metrics: metricsListener ? joinHostPort(metricsListener.host, metricsListener.port) : "off",
    iptables: backend,
    bridge: bridgeDeviceName,
    tunnel: tunnel ? tunnel.peerId : "off",
    cni: cni ? "on" : "off",
    socks5: socks5 ? socks5.server.port : "off",
  });

  return async () => {
    stopWatch?.();
    securePeers?.stop();
    socks5?.server.stop();
    await proxy?.drain(DRAIN_DEADLINE_MS);
    remote?.stop();
    inbound?.stop();
    await cni?.stop();
    await tunnel?.stop().catch((err) => log.warn("tunnel stop failed", { error: (err as Error).message }));
    await iptables?.stop();
    dns?.stop();
    proxy?.stop();
    admin.stop();
    metricsListener?.stop();
    await metadata.stop();
    publisher.stop();
    await releaseBridge(bridgeDeviceName, bridgeDeviceIP, bridge);
  };
}

/** The tunnel's modules, Noise without its WebAssembly when a native AEAD is there (no-wasm.ts). */
async function loadTunnelModule() {
  (await import("../tunnel/no-wasm.ts")).skipNoiseWasm();
  return import("./tunnel.ts");
}

/** Waits until the first apply succeeded or failed (it retries on its own), at most a few seconds. */
async function firstApply(iptables: IptablesSyncer): Promise<void> {
  const deadline = Date.now() + FIRST_APPLY_WAIT_MS;
  while (Date.now() < deadline) {
    const s = iptables.status();
    if (s.appliedVersion >= 0 || s.consecutiveFailures > 0) return;
    await Bun.sleep(10);
  }
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
  try {
    await dns.start();
  } catch (err) {
    dns.stop(); // UDP may be bound when TCP fails
    throw listenFailure(err, { what: "DNS", key: "modules.edgeDNS.listenPort", host, port: d.listenPort, protocols: ["udp", "tcp"] });
  }
  return dns;
}
