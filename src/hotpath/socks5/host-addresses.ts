// The far side of a SOCKS5 CONNECT: which addresses count as "this node" when a peer asks the
// agent to dial a host port. The addresses its own Node object lists (what our SOCKS5 side dials)
// and the host's interface addresses (EdgeMesh's side dials the address of the agent pod, which in
// the host network is one of them); never loopback, never the bridge IP (our own listeners).
// Interfaces are read at most once per refresh interval, on the handshake path of the tunnel.

import { networkInterfaces } from "node:os";
import type { NodeDirectory } from "./decide.ts";

const second = 1000;
/** Interface addresses change rarely (DHCP); a CONNECT may see a list this old. */
export const HOST_ADDRESSES_REFRESH_MS = 5 * second;

export interface HostAddressOptions {
  readonly nodeName: string;
  readonly nodes: () => NodeDirectory;
  /** Addresses that are local but not "the node" for this purpose (the bridge IP). */
  readonly exclude: readonly string[];
  /** Injected for tests; os.networkInterfaces by default. */
  readonly interfaces?: () => ReturnType<typeof networkInterfaces>;
  readonly clock?: { now(): number };
}

export interface HostAddresses {
  has(ip: string): boolean;
}

export function createHostAddresses(o: HostAddressOptions): HostAddresses {
  const clock = o.clock ?? Date;
  const read = o.interfaces ?? networkInterfaces;
  const exclude = new Set(o.exclude);
  let local = new Set<string>();
  let readAt = -Infinity;
  return {
    has(ip) {
      if (exclude.has(ip) || ip.startsWith("127.")) return false;
      if (o.nodes().byAddress.get(ip) === o.nodeName) return true;
      const now = clock.now();
      if (now - readAt >= HOST_ADDRESSES_REFRESH_MS) {
        readAt = now;
        const next = new Set<string>();
        for (const list of Object.values(read())) for (const a of list ?? []) if (a.family === "IPv4" && !a.internal) next.add(a.address);
        local = next;
      }
      return local.has(ip);
    },
  };
}
