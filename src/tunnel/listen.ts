// Which addresses the tunnel listens on, as EdgeMesh chooses them: the IPv4 addresses of every
// interface (or of those named in listenInterfaces), skipping interfaces where listening is
// meaningless (container bridges, CNI and tunnel devices, our own edgemesh0). Pure: the
// interface table is passed in (os.networkInterfaces() in production).
import type { NetworkInterfaceInfo } from "node:os";
import { TunnelError } from "./errors.ts";
import type { TransportKind } from "./host.ts";

/** EdgeMesh's filter list plus kube-ipvs (IPVS dummy device holding every ClusterIP). */
export const FILTERED_INTERFACE_PREFIXES = ["docker", "edgemesh", "tunl", "flannel", "cni", "br", "kube-ipvs"];

export interface ListenAddrOptions {
  port: number;
  transport: TransportKind;
  /** Comma-separated names (EdgeMesh's listenInterfaces); empty or "*" means all. */
  listenInterfaces?: string;
  extraFilteredInterfaces?: string[];
  interfaces: Record<string, NetworkInterfaceInfo[] | undefined>;
}

export function listenAddrsFromInterfaces(o: ListenAddrOptions): string[] {
  const prefixes = [...FILTERED_INTERFACE_PREFIXES, ...(o.extraFilteredInterfaces ?? [])];
  const wanted = o.listenInterfaces && o.listenInterfaces !== "*" ? o.listenInterfaces.split(",").map((s) => s.trim()).filter(Boolean) : undefined;
  if (wanted) {
    for (const name of wanted) if (!o.interfaces[name]) throw new TunnelError("BAD_CONFIG", `listenInterfaces names ${name}, which does not exist`);
  }
  const names = (wanted ?? Object.keys(o.interfaces)).sort();
  const out: string[] = [];
  for (const name of names) {
    if (prefixes.some((p) => name.startsWith(p))) continue;
    for (const a of o.interfaces[name] ?? []) {
      if (a.family !== "IPv4") continue; // EdgeMesh listens on IPv4 only
      if (o.transport !== "quic") out.push(`/ip4/${a.address}/tcp/${o.port}`);
      if (o.transport !== "tcp") out.push(`/ip4/${a.address}/udp/${o.port}/quic-v1`);
    }
  }
  return out;
}
