// `edgemesh dev`: the single-node mode for a laptop. No root and no cluster: a manifest folder is
// the metadata source, every service port listens on loopback, DNS answers on a loopback port,
// and every endpoint is dialed directly. With the bundled examples it also starts the demo
// backends they point at, so the first command of the README shows traffic flowing.

import { resolve } from "node:path";
import { startAdminServer, startMetricsListener, parseHostPort, joinHostPort, routesJson } from "../admin/index.ts";
import {
  createObjectStore,
  createManifestSource,
  createPublisher,
  defaultConfig,
  loadConfig,
  systemClock,
} from "../control/index.ts";
import { createDnsServer } from "../dns/index.ts";
import { createProxy, createZeroCopyIfSupported } from "../hotpath/index.ts";
import { createLogger } from "../log/index.ts";
import { applyLogConfig } from "./logging.ts";
import { createProcessMetrics } from "./build-info.ts";
import type { Command } from "./args.ts";
import { formatRoutes } from "./status.ts";
import { edgeProxyOptions } from "./proxy-config.ts";
import { onShutdown } from "./shutdown.ts";
import { startDevGateway } from "./dev-gateway.ts";

export const BUNDLED_MANIFESTS = resolve(import.meta.dir, "../../examples/manifests");
const LOOPBACK = "127.0.0.1";
/** Dev mode has one node; endpoints are all "local". */
const DEV_NODE = "";
const PRINT_DEBOUNCE_MS = 200;

export async function runDev(cmd: Extract<Command, { cmd: "dev" }>): Promise<number> {
  const log = createLogger({ component: "dev" });
  const metrics = createProcessMetrics();
  const config = cmd.config ? loadConfig({ path: cmd.config, env: {} }) : defaultConfig();
  applyLogConfig(config, cmd);
  const dir = resolve(cmd.manifests ?? BUNDLED_MANIFESTS);
  const dnsAddress = parseHostPort(cmd.dns, "--dns");

  const store = createObjectStore();
  const source = createManifestSource({ dir, store, log: log.child("manifests") });
  const publisher = createPublisher({
    store,
    compileOptions: { serviceFilterMode: config.modules.edgeProxy.serviceFilterMode, warn: (m) => log.warn(m) },
    clock: systemClock,
    log: log.child("control"),
    metrics,
  });
  await source.start();
  publisher.flush();

  const demo = dir === BUNDLED_MANIFESTS ? (await import("../../examples/demo/backends.ts")).startDemoBackends(log) : undefined;

  const maxConnections = config.modules.edgeProxy.maxConnections || 4096;
  const proxy = createProxy({
    table: publisher,
    bindHost: LOOPBACK,
    nodeName: DEV_NODE,
    maxConnections,
    ...edgeProxyOptions(config),
    metrics,
    log: log.child("proxy"),
    // One adopted (splice(2)) pair per 8 connections, at most 1024 (each holds 4 fds more).
    zeroCopy: createZeroCopyIfSupported({ maxPairs: Math.min(1024, Math.floor(maxConnections / 8)), log: log.child("zerocopy"), metrics }),
  });
  proxy.start();

  const dnsConfig = config.modules.edgeDNS;
  const dns = createDnsServer({
    table: publisher,
    listen: dnsAddress,
    tcp: true,
    clusterDomain: dnsConfig.clusterDomain,
    ttl: dnsConfig.ttl,
    upstreams: [...dnsConfig.upstreamResolvers],
    cacheSize: dnsConfig.cacheSize,
    serviceIP: LOOPBACK,
    metrics,
    log,
  });
  const dnsBound = await dns.start();

  // Gateway/VirtualService manifests get the edge gateway on 127.0.0.1 (nothing opens without them).
  const devGateway = startDevGateway({ store, routes: publisher, proxy, config, nodeName: DEV_NODE, metrics, log });
  const adminRoutes = {
    table: publisher,
    listeners: () => proxy.listeners(),
    readiness: () => ({ ready: true, reasons: source.errors.map((e) => String(e.message ?? e)) }),
    metrics,
    gateway: devGateway.admin,
  };
  const admin = startAdminServer({ address: cmd.admin, ...adminRoutes });
  const mc = config.modules.edgeTunnel.metricConfig;
  const metricsListener = mc.enable ? startMetricsListener({ bindAddress: mc.bindAddress, port: mc.port, ...adminRoutes }) : undefined;

  console.log(`edgemesh dev: manifests ${dir}`);
  console.log(`edgemesh dev: admin http://${joinHostPort(admin.host, admin.port)} (/routes, /metrics, /readyz)`);
  if (metricsListener) console.log(`edgemesh dev: metrics http://${joinHostPort(metricsListener.host, metricsListener.port)}/metrics`);
  console.log(`edgemesh dev: dns ${joinHostPort(dnsBound.host, dnsBound.udpPort)} udp, ${joinHostPort(dnsBound.host, dnsBound.tcpPort)} tcp`);

  // Print the service table now and whenever routes or listeners change (bursts merged).
  let timer: ReturnType<typeof setTimeout> | undefined;
  let lastPrinted = "";
  const print = () => {
    timer = undefined;
    const gatewayText = devGateway.format();
    const text = formatRoutes(routesJson(publisher.current(), proxy.listeners())) + (gatewayText ? `\n\n${gatewayText}` : "");
    if (text === lastPrinted) return;
    lastPrinted = text;
    console.log(`\nroutes v${publisher.current().version}:\n${text}\n`);
  };
  const schedule = () => {
    timer ??= setTimeout(print, PRINT_DEBOUNCE_MS);
  };
  publisher.subscribe(schedule);
  proxy.onListenersChanged(schedule);
  devGateway.tables.subscribe(schedule);
  devGateway.gateway.onListenersChanged(schedule);
  print();

  return onShutdown(log, async () => {
    source.stop();
    admin.stop();
    metricsListener?.stop();
    dns.stop();
    await devGateway.stop();
    await proxy.drain(2000);
    proxy.stop();
    publisher.stop();
    demo?.stop();
  });
}
