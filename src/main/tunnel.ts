// The agent's tunnel, built from modules.edgeTunnel: listen addresses chosen from the node's
// interfaces as EdgeMesh does, the PSK file turned into EdgeMesh's pnet key, the identity
// (compat: derived from the node name; secure: a key kept in commonConfig.stateDir), stream
// limits, relays. Also follows the config file so relayNodes edits apply without a restart.

import { readFileSync, watch, type FSWatcher } from "node:fs";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { loadConfig, type EdgeMeshAgentConfig } from "../control/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";
import {
  createTunnel,
  listenAddrsFromInterfaces,
  pskKeyFromFile,
  type RelayNode,
  type TransportKind,
  type Tunnel,
  type TunnelOptions,
} from "../tunnel/index.ts";

export { createSecurePeers } from "./peer-publish.ts";

/** File name of the secure-mode key inside commonConfig.stateDir. */
export const TUNNEL_KEY_FILE = "tunnel.key";
/** With tunnelLimitConfig.enable false: effectively unlimited, as EdgeMesh's infinite limits. */
const UNLIMITED_STREAMS = 1 << 20;
/** A burst of config writes (editor save, rename) is read once. */
const CONFIG_RELOAD_DELAY_MS = 200;

export class TunnelConfigError extends Error {
  constructor(key: string, message: string) {
    super(`modules.edgeTunnel.${key}: ${message}`);
    this.name = "TunnelConfigError";
  }
}

export function tunnelOptions(config: EdgeMeshAgentConfig, log: Logger, metrics: MetricsRegistry, env: { interfaces?: typeof networkInterfaces } = {}): TunnelOptions {
  const t = config.modules.edgeTunnel;
  let transport: TransportKind = "tcp";
  if (t.transport === "quic") transport = "quic";
  else if (t.transport === "ws") log.warn("modules.edgeTunnel.transport ws is not supported; using tcp");

  let psk: Uint8Array | undefined;
  if (t.psk.enable) {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(t.psk.path);
    } catch (err) {
      throw new TunnelConfigError("psk.path", `cannot read the PSK file ${t.psk.path}: ${(err as Error).message}`);
    }
    psk = pskKeyFromFile(bytes);
    // A private network cannot run over QUIC (no connection protector there).
    if (transport === "quic") throw new TunnelConfigError("transport", "quic cannot carry a PSK private network: use tcp or set psk.enable false");
  }

  // Loopback is left out: peers learn our listen addresses (identify, mDNS) and a peer dialing
  // "our" 127.0.0.1 reaches itself (a Noise identity mismatch on every relay or peer redial).
  const listenAddrs = listenAddrsFromInterfaces({
    port: t.listenPort,
    transport,
    listenInterfaces: t.listenInterfaces,
    extraFilteredInterfaces: t.extraFilteredInterfaces.split(",").map((s) => s.trim()).filter(Boolean),
    interfaces: (env.interfaces ?? networkInterfaces)(),
  }).filter((a) => !a.startsWith("/ip4/127."));
  const limits = t.tunnelLimitConfig;
  return {
    nodeName: config.nodeName,
    listenPort: t.listenPort,
    // No usable interface (all filtered): fall back to every address, as the tunnel defaults.
    listenAddrs: listenAddrs.length > 0 ? listenAddrs : undefined,
    transport,
    psk,
    identity: t.identityMode === "secure" ? { mode: "secure", keyFile: join(config.commonConfig.stateDir, TUNNEL_KEY_FILE) } : { mode: "compat" },
    relayNodes: relayNodes(config),
    mdns: true,
    rendezvous: t.rendezvous,
    enableHolePunch: true,
    maxStreams: limits.enable ? Math.max(limits.tunnelBaseStreamIn, limits.tunnelBaseStreamOut) : UNLIMITED_STREAMS,
    maxStreamsPerPeer: limits.enable ? Math.max(limits.tunnelPeerBaseStreamIn, limits.tunnelPeerBaseStreamOut) : UNLIMITED_STREAMS,
    extensions: t.wireFormat !== "edgemesh",
    log,
    metrics,
  };
}

export function relayNodes(config: EdgeMeshAgentConfig): RelayNode[] {
  return config.modules.edgeTunnel.relayNodes.map((r) => ({ nodeName: r.nodeName, advertiseAddress: [...r.advertiseAddress] }));
}

export function createAgentTunnel(config: EdgeMeshAgentConfig, log: Logger, metrics: MetricsRegistry): Tunnel {
  return createTunnel(tunnelOptions(config, log, metrics));
}

/**
 * Re-reads the config file when it changes and hands a changed relayNodes list to the tunnel.
 * Other edits need a restart (logged once per change). Returns a stop function.
 */
export function watchRelayNodes(configPath: string, tunnel: Pick<Tunnel, "setRelayNodes">, initial: EdgeMeshAgentConfig, log: Logger): () => void {
  let current = JSON.stringify(relayNodes(initial));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const reload = () => {
    timer = undefined;
    let next: EdgeMeshAgentConfig;
    try {
      next = loadConfig({ path: configPath, env: process.env });
    } catch (err) {
      log.warn("config file changed but cannot be loaded; relays unchanged", { error: (err as Error).message });
      return;
    }
    const relays = relayNodes(next);
    const text = JSON.stringify(relays);
    if (text === current) return;
    current = text;
    log.info("relayNodes changed in the config file; applying", { relays: relays.map((r) => r.nodeName).join(",") });
    tunnel.setRelayNodes(relays);
  };
  let watcher: FSWatcher | undefined;
  try {
    // Watch the folder: editors and ConfigMap updates replace the file (rename), which a watch
    // on the file itself would miss after the first time.
    const dir = configPath.includes("/") ? configPath.slice(0, configPath.lastIndexOf("/")) || "/" : ".";
    const base = configPath.slice(configPath.lastIndexOf("/") + 1);
    watcher = watch(dir, (_event, name) => {
      if (name !== null && name !== base && name !== "..data") return;
      if (timer === undefined) timer = setTimeout(reload, CONFIG_RELOAD_DELAY_MS);
    });
  } catch (err) {
    log.warn("cannot watch the config file; relayNodes changes need a restart", { error: (err as Error).message });
  }
  return () => {
    watcher?.close();
    if (timer !== undefined) clearTimeout(timer);
  };
}

