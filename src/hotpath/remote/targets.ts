// Which ip:port a peer agent may ask this node to dial: endpoints of some ServicePort that the
// table places on this node. Anything else (another node's pod, the node's own services, an
// arbitrary address) is refused, so the tunnel is not an open proxy into the node's network.
// The set is built once per table version and kept until the table changes.

import type { Protocol, RouteTable } from "../../control/index.ts";

export function targetKey(protocol: Protocol, ip: string, port: number): string {
  return `${protocol} ${ip}:${port}`;
}

export class LocalTargets {
  #table: RouteTable | null = null;
  #set = new Set<string>();
  constructor(readonly nodeName: string) {}

  has(table: RouteTable, protocol: Protocol, ip: string, port: number): boolean {
    if (table !== this.#table) this.#rebuild(table);
    return this.#set.has(targetKey(protocol, ip, port));
  }

  #rebuild(table: RouteTable): void {
    const set = new Set<string>();
    for (const sp of table.ports) {
      for (const ep of sp.endpoints) {
        if (ep.node === this.nodeName) set.add(targetKey(sp.protocol, ep.ip, ep.port));
      }
    }
    this.#set = set;
    this.#table = table;
  }
}
