// The agent's Edge CNI (modules.edgeCNI): the compile inputs (this node's subnets, the
// meshCIDRConfig segments), the TUN device and its routes (src/host), and the packet pump
// (src/hotpath/cni) over the tunnel's CNI streams. Loaded only when edgeCNI is on.

import { readFileSync } from "node:fs";
import { networkInterfaces } from "node:os";
import type { CniCompileOptions, EdgeMeshAgentConfig, TableSource } from "../control/index.ts";
import { parseCidr4, parseIPv4 } from "../control/index.ts";
import { createRouteSyncer, openTun } from "../host/index.ts";
import { createCniPump, type CniTunnel } from "../hotpath/cni/index.ts";
import type { Logger } from "../log/index.ts";
import type { MetricsRegistry } from "../metrics/index.ts";

/**
 * The TUN's MTU: the usual pod network MTU, so a pod's full-size packet passes unchanged and a
 * DF probe above it gets "fragmentation needed" from the node as on any path. Frames add no
 * IP-level overhead: packets ride a byte stream (yamux over TCP or QUIC) that segments them for
 * the outer path itself, so nothing is ever fragmented for the tunnel's sake.
 */
export const CNI_MTU = 1500;

type Interfaces = ReturnType<typeof networkInterfaces>;

/**
 * TUN segmentation offload (virtio headers, 64 KiB superpackets) unless EDGEMESH_CNI_OFFLOAD=0:
 * for a kernel whose TUN offload misbehaves, and for tests of a mixed mesh (a peer without
 * offload speaks EdgeMesh's plain packets, as EdgeMesh's own agent does).
 */
export function cniOffloadWanted(env: Record<string, string | undefined> = process.env): boolean {
  return env.EDGEMESH_CNI_OFFLOAD !== "0";
}

/** Compile inputs: the segments from the config, this node's IPv4 subnets for the LAN rule. */
export function cniCompileOptions(config: EdgeMeshAgentConfig, interfaces: Interfaces = networkInterfaces()): CniCompileOptions {
  const mesh = config.modules.edgeCNI.meshCIDRConfig;
  const localSubnets: string[] = [];
  for (const [name, addrs] of Object.entries(interfaces)) {
    if (name === config.commonConfig.bridgeDeviceName) continue;
    for (const a of addrs ?? []) if (a.family === "IPv4" && !a.internal && a.cidr && !a.cidr.endsWith("/32")) localSubnets.push(a.cidr);
  }
  return { nodeName: config.nodeName, cloudCIDR: mesh.cloudCIDR, edgeCIDR: mesh.edgeCIDR, localSubnets };
}

/** An address of this node inside its own pod CIDRs (the pod bridge's gateway), if any. */
export function localPodAddress(podCIDRs: readonly string[], interfaces: Interfaces = networkInterfaces()): string | undefined {
  const ranges = podCIDRs.map(parseCidr4).filter((c) => c !== undefined);
  for (const addrs of Object.values(interfaces)) {
    for (const a of addrs ?? []) {
      if (a.family !== "IPv4" || a.internal) continue;
      const ip = parseIPv4(a.address);
      if (ip !== undefined && ranges.some((r) => ((ip & (r.bits === 0 ? 0 : (0xffff_ffff << (32 - r.bits)) >>> 0)) >>> 0) === r.net)) return a.address;
    }
  }
  return undefined;
}

export interface AgentCni {
  stop(): Promise<void>;
}

/** Opens the TUN, follows the table's routes, starts the pump. Call before tunnel.start(). */
export async function startCni(o: { config: EdgeMeshAgentConfig; table: TableSource; tunnel: CniTunnel; log: Logger; metrics: MetricsRegistry }): Promise<AgentCni> {
  const { config, table, log } = o;
  const c = config.modules.edgeCNI;
  if (c.encapIP !== "") log.warn("modules.edgeCNI.encapIP has no effect: pod packets ride the tunnel, there is no outer encapsulation address", { encapIP: c.encapIP });
  if (c.tunMode !== 0) log.warn("modules.edgeCNI.tunMode has no effect: TUN is the only mode", { tunMode: c.tunMode });
  if (readSysctl("/proc/sys/net/ipv4/ip_forward") === "0") log.warn("net.ipv4.ip_forward is 0: packets between the TUN and the pods are not forwarded until it is 1");

  const dev = await openTun({ mtu: CNI_MTU, offload: cniOffloadWanted(), log });
  const routes = createRouteSyncer({ device: dev.name, src: () => localPodAddress(table.current().cni?.localPodCIDRs ?? []), log, metrics: o.metrics });
  let last = "";
  const sync = () => {
    const cidrs = (table.current().cni?.routes ?? []).map((r) => r.cidr);
    const key = cidrs.join(",");
    if (key === last) return;
    last = key;
    routes.update(cidrs);
  };
  const unsubscribe = table.subscribe(sync);
  sync();
  const pump = createCniPump({ table, dev, tunnel: o.tunnel, log, metrics: o.metrics });
  pump.start();
  log.info("Edge CNI on", { device: dev.name, mtu: dev.mtu, offload: dev.offload, segments: [...c.meshCIDRConfig.cloudCIDR, ...c.meshCIDRConfig.edgeCIDR].join(",") });
  return {
    async stop() {
      unsubscribe();
      pump.stop();
      await routes.stop();
      await dev.close(); // the device and every route on it disappear with the descriptor
    },
  };
}

function readSysctl(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}
