// `edgemesh gateway`: the edge gateway, EdgeMesh's edgemesh-gateway Deployment. The same two
// planes as the agent: the metadata source (Kubernetes API with TLS Secrets, or a manifest
// folder) feeds the RouteTable and the GatewayTable (Istio Gateway/VirtualService, certificates,
// the selected NIC addresses, polled); the data plane serves the Gateway ports on those
// addresses and reaches endpoints here directly and on other nodes through the tunnel, which it
// joins as "<node>-gateway" (EdgeMesh's identity for it, so it and the node's agent can both
// run; in secure identity mode it publishes its random peer ID on the Node it runs on under
// edgemesh.kubeedge.io/gateway-peer-id). No root, no iptables, no bridge: only sockets.

import { networkInterfaces } from "node:os";
import { joinHostPort, parseHostPort, startAdminServer, startMetricsListener, type Readiness } from "../admin/index.ts";
import {
  createGatewayPublisher,
  createNicSource,
  createObjectStore,
  createPublisher,
  GATEWAY_KINDS,
  loadConfig,
  requireNodeName,
  systemClock,
  type EdgeMeshAgentConfig,
  type ObjectStore,
} from "../control/index.ts";
import { createGateway, unboundListeners } from "../gateway/index.ts";
import { raiseNofileLimit } from "../host/index.ts";
import { createProxy, createTunnelDialer, createZeroCopyIfSupported, zeroCopyFdBudget } from "../hotpath/index.ts";
import { createLogger, type Logger } from "../log/index.ts";
import { effectiveMetricConfig, type LogFlags, type MetricsFlags } from "./args.ts";
import { createProcessMetrics } from "./build-info.ts";
import { applyLogConfig } from "./logging.ts";
import { startMetadataSource } from "./metadata.ts";
import { edgeProxyOptions } from "./proxy-config.ts";
import { onShutdown } from "./shutdown.ts";
import { createUndoStack, listenFailure, StartupError, type UndoStack } from "./startup.ts";
import { unbuiltWarnings } from "./unbuilt.ts";
import { GATEWAY_PEER_ID_ANNOTATION, gatewayRefusals, gatewayView } from "./gateway-config.ts";

export { GATEWAY_ADMIN_DEFAULT, GATEWAY_IDENTITY_SUFFIX, gatewayView } from "./gateway-config.ts";

const RESERVED_FDS = 512;
/** A gateway connection holds a client and an upstream descriptor. */
const FDS_PER_CONNECTION = 2;
const DRAIN_DEADLINE_MS = 5000;

export async function runGateway(configPath: string, flags: LogFlags & MetricsFlags = {}): Promise<number> {
  const log = createLogger({ component: "gateway" });
  const undo = createUndoStack(log);
  let stop: () => Promise<void>;
  try {
    stop = await startGateway(configPath, flags, log, undo);
  } catch (err) {
    await undo.run();
    throw err;
  }
  return onShutdown(log, stop);
}

async function startGateway(configPath: string, flags: LogFlags & MetricsFlags, log: Logger, undo: UndoStack): Promise<() => Promise<void>> {
  const metrics = createProcessMetrics();
  const config = loadConfig({ path: configPath, env: process.env, notice: (m) => log.warn(m) });
  applyLogConfig(config, flags);
  requireNodeName(config);
  const { tunnelConfig, adminAddress } = gatewayView(config);
  const gw = config.modules.edgeGateway;
  const t = config.modules.edgeTunnel;
  const refusals = gatewayRefusals(config);
  if (refusals.length > 0) throw new StartupError(refusals.join("; "));
  // An edgemesh-gateway.yaml has no apiVersion/kind (EdgeMesh's ConfigMap); modules other than
  // edgeGateway and edgeTunnel are the agent's and do not run here.
  for (const warning of unbuiltWarnings(config)) if (!warning.startsWith("modules.edgeGateway.enable")) log.warn(warning);
  const limits = raiseNofileLimit();
  const { maxConnections, maxPairs } = zeroCopyFdBudget(limits.soft, RESERVED_FDS, FDS_PER_CONNECTION, 0);
  const modules = [gw.enable && "edgeGateway", t.enable && "edgeTunnel"].filter(Boolean).join(",") || "none";
  log.info("starting", { node: config.nodeName, tunnelIdentity: t.enable ? tunnelConfig.nodeName : "off", mode: config.kubeAPIConfig.mode, modules, nofile: limits.soft, maxConnections });
  if (!gw.enable) log.warn("modules.edgeGateway.enable is false: no gateway listeners (as EdgeMesh, only the tunnel runs); set it to true");

  const store = createObjectStore();
  const metadata = await startMetadataSource(config, store, log, metrics, GATEWAY_KINDS);
  undo.add("metadata source", () => metadata.stop());
  const routes = createPublisher({
    store,
    compileOptions: { serviceFilterMode: config.modules.edgeProxy.serviceFilterMode, warn: (m) => log.warn(m) },
    clock: systemClock,
    log: log.child("control"),
    metrics,
  });
  routes.flush();
  undo.add("route publisher", () => routes.stop());
  const addresses = createNicSource({
    selection: gw,
    interfaces: networkInterfaces,
    clock: systemClock,
    onMissing: (names) => log.warn("modules.edgeGateway.nic names interfaces that do not exist (now); their addresses join when they appear", { missing: names.join(",") }),
  });
  undo.add("NIC poll", () => addresses.stop());
  const tables = createGatewayPublisher({ store, addresses, compileOptions: { clusterDomain: config.modules.edgeDNS.clusterDomain }, log: log.child("control"), clock: systemClock, metrics });
  tables.flush();
  undo.add("gateway publisher", () => tables.stop());
  tables.subscribe((tb) => log.info("gateway table", { version: tb.version, addresses: tb.addresses.join(",") || "none", ports: tb.ports.map((p) => `${p.port}/${p.mode}`).join(",") || "none" }));

  const joined = t.enable ? await startGatewayTunnel(tunnelConfig, config.nodeName, store, log, metrics, undo) : undefined;
  const tunnel = joined?.tunnel;
  const remote = tunnel ? createTunnelDialer({ tunnel, log: log.child("remote"), metrics }) : undefined;
  const proxy = createProxy({
    table: routes,
    bindHost: "127.0.0.1",
    listen: false,
    nodeName: config.nodeName,
    remote,
    maxConnections,
    ...edgeProxyOptions(config),
    consistentHash: gw.loadBalancer.consistentHash,
    metrics,
    log: log.child("proxy"),
    zeroCopy: createZeroCopyIfSupported({ maxPairs, log: log.child("zerocopy"), metrics }),
  });
  proxy.start();
  undo.add("proxy", () => proxy.stop());
  const gateway = createGateway({
    gateway: tables,
    routes,
    proxy,
    nodeName: config.nodeName,
    remote,
    consistentHash: gw.loadBalancer.consistentHash,
    maxConnections,
    metrics,
    log: log.child("gateway"),
  });
  if (gw.enable) gateway.start();
  undo.add("gateway listeners", () => gateway.stop());

  // Ready when the metadata is synced AND every listener the table wants is bound: a Gateway
  // port another process holds keeps the pod out of Service endpoints until the bind succeeds.
  const readiness = (): Readiness => {
    const m = metadata.status();
    const unbound = gw.enable ? unboundListeners(tables.current(), gateway.listeners()) : [];
    return { ready: m.ready && unbound.length === 0, reasons: [...m.reasons, ...unbound] };
  };
  const adminRoutes = {
    table: routes,
    listeners: () => new Map(),
    readiness,
    metrics,
    peers: tunnel ? () => tunnel.peers() : undefined,
    gateway: { table: tables, listeners: () => gateway.listeners() },
  };
  let admin: ReturnType<typeof startAdminServer>;
  try {
    admin = startAdminServer({ address: adminAddress, ...adminRoutes });
  } catch (err) {
    const { host, port } = parseHostPort(adminAddress, "commonConfig.adminAddress");
    throw listenFailure(err, { what: "the admin endpoint", key: "commonConfig.adminAddress", host, port, protocols: ["tcp"] });
  }
  undo.add("admin endpoint", () => admin.stop());
  const mc = effectiveMetricConfig(t.metricConfig, flags);
  let metricsListener: ReturnType<typeof startMetricsListener> | undefined;
  try {
    metricsListener = mc.enable ? startMetricsListener({ bindAddress: mc.bindAddress, port: mc.port, ...adminRoutes }) : undefined;
  } catch (err) {
    throw listenFailure(err, { what: "the metrics listener", key: mc.key, host: mc.bindAddress, port: mc.port, protocols: ["tcp"] });
  }
  if (metricsListener) undo.add("metrics listener", () => metricsListener!.stop());
  log.info("running", {
    admin: `${admin.host}:${admin.port}`,
    metrics: metricsListener ? joinHostPort(metricsListener.host, metricsListener.port) : "off",
    tunnel: tunnel ? tunnel.peerId : "off",
    addresses: tables.current().addresses.join(",") || "none",
  });

  return async () => {
    await gateway.drain(DRAIN_DEADLINE_MS);
    joined?.peers?.stop();
    await tunnel?.stop().catch((err) => log.warn("tunnel stop failed", { error: (err as Error).message }));
    proxy.stop();
    admin.stop();
    metricsListener?.stop();
    addresses.stop();
    tables.stop();
    routes.stop();
    await metadata.stop();
  };
}

/**
 * The gateway's tunnel: dial-only in practice (no agent dials "<node>-gateway"), so when the
 * node's agent already holds edgeTunnel.listenPort the gateway listens on a free port instead.
 */
async function startGatewayTunnel(config: EdgeMeshAgentConfig, node: string, store: ObjectStore, log: Logger, metrics: ReturnType<typeof createProcessMetrics>, undo: UndoStack) {
  const mod = await import("./tunnel.ts");
  // Secure mode: the gateway admits the peer IDs agents publish on their Nodes and publishes its
  // own on the Node it runs on under GATEWAY_PEER_ID_ANNOTATION, which agents admit as
  // "<node>-gateway". Wired before start, as the agent does, so no published peer is refused.
  const secure = config.modules.edgeTunnel.identityMode === "secure";
  const as = { node, annotation: GATEWAY_PEER_ID_ANNOTATION, tunnelName: config.nodeName };
  let peers: ReturnType<typeof mod.createSecurePeers> | undefined;
  const create = (c: EdgeMeshAgentConfig) => {
    const t = mod.createAgentTunnel(c, log.child("tunnel"), metrics);
    peers?.stop();
    peers = secure ? mod.createSecurePeers(c, store, t, log.child("peers"), metrics, as) : undefined;
    return t;
  };
  let tunnel = create(config);
  undo.add("tunnel", () => tunnel.stop());
  undo.add("secure-mode peers", () => peers?.stop());
  try {
    await tunnel.start();
  } catch (err) {
    const port = config.modules.edgeTunnel.listenPort;
    if (!/EADDRINUSE/.test(String((err as Error)?.message ?? err)) && (err as { code?: string }).code !== "EADDRINUSE") {
      throw listenFailure(err, { what: "the tunnel", key: "modules.edgeTunnel.listenPort", host: "0.0.0.0", port, protocols: ["tcp"] });
    }
    await tunnel.stop().catch(() => {});
    log.info("modules.edgeTunnel.listenPort is taken (the node's agent holds it); the gateway only dials out, its tunnel listens on a free port", { port });
    const free = { ...config, modules: { ...config.modules, edgeTunnel: { ...config.modules.edgeTunnel, listenPort: 0 } } };
    tunnel = create(free);
    await tunnel.start();
  }
  await peers?.publish();
  return { tunnel, peers };
}
