// The SOCKS5 "pick": where a CONNECT goes. The service proxy picks an endpoint of a service; this
// picks a node. As EdgeMesh: the target host is a node name, and the far agent dials that node's
// own address (EdgeMesh resolves the name to the address of its agent pod on the node, which runs
// in the host network: the node's IP). Beyond EdgeMesh: an IPv4 address (or a domain that is an
// IPv4 literal) that some Node lists is accepted too, the own node is dialed directly instead of
// refused, and every refusal gets its RFC 1928 reply instead of a silent close. Anything that is
// not a node is refused: the listener is not an open proxy into the cluster's networks.

import type { KubeObject } from "../../control/index.ts";
import {
  ATYP_DOMAIN,
  ATYP_IPV4,
  ATYP_IPV6,
  CMD_CONNECT,
  REP_ADDRESS_TYPE_NOT_SUPPORTED,
  REP_COMMAND_NOT_SUPPORTED,
  REP_CONNECTION_REFUSED,
  REP_GENERAL_FAILURE,
  REP_HOST_UNREACHABLE,
  REP_NETWORK_UNREACHABLE,
  REP_NOT_ALLOWED,
  type SocksRequest,
} from "./protocol.ts";

export interface NodeDirectory {
  /** Node name -> the IPv4 address dialed on it ("" when the Node lists none). */
  readonly byName: ReadonlyMap<string, string>;
  /** Every IPv4 address a Node lists -> that Node's name. */
  readonly byAddress: ReadonlyMap<string, string>;
}

export const EMPTY_DIRECTORY: NodeDirectory = { byName: new Map(), byAddress: new Map() };

const IPV4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

/** Pure: the directory of the Node objects. The dial address is the first IPv4 InternalIP, else
 * the first IPv4 ExternalIP (kubelet's choice of node IP, which a host-network pod gets). */
export function nodeDirectory(nodes: Iterable<KubeObject>): NodeDirectory {
  const byName = new Map<string, string>();
  const byAddress = new Map<string, string>();
  for (const node of nodes) {
    const name = node.metadata?.name;
    if (typeof name !== "string" || name === "") continue;
    const addresses: unknown = node.status?.addresses;
    let internal = "";
    let external = "";
    if (Array.isArray(addresses)) {
      for (const a of addresses as { type?: unknown; address?: unknown }[]) {
        if (typeof a?.address !== "string" || !IPV4.test(a.address)) continue;
        if (!byAddress.has(a.address)) byAddress.set(a.address, name);
        if (a.type === "InternalIP" && internal === "") internal = a.address;
        else if (a.type === "ExternalIP" && external === "") external = a.address;
      }
    }
    byName.set(name.toLowerCase(), internal || external);
  }
  return { byName, byAddress };
}

export type SocksPlan =
  | { readonly kind: "connect"; readonly node: string; readonly ip: string; readonly port: number; readonly local: boolean }
  | { readonly kind: "refuse"; readonly code: number; readonly reason: string };

/** Where a request goes, or the reply that refuses it. `self` is this agent's node name. */
export function decide(req: SocksRequest, dir: NodeDirectory, self: string): SocksPlan {
  if (req.command !== CMD_CONNECT) return refuse(REP_COMMAND_NOT_SUPPORTED, `command ${req.command} (only CONNECT)`);
  if (req.addressType === ATYP_IPV6) return refuse(REP_ADDRESS_TYPE_NOT_SUPPORTED, "IPv6 addresses");
  if (req.addressType !== ATYP_IPV4 && req.addressType !== ATYP_DOMAIN) return refuse(REP_ADDRESS_TYPE_NOT_SUPPORTED, `address type ${req.addressType}`);
  if (req.port === 0) return refuse(REP_NOT_ALLOWED, "port 0");
  let host = req.host.toLowerCase();
  if (host.endsWith(".")) host = host.slice(0, -1);
  if (IPV4.test(host)) {
    const node = dir.byAddress.get(host);
    if (node === undefined) return refuse(REP_NOT_ALLOWED, `${host} is not an address of any node`);
    return connect(node, host, req.port, self);
  }
  const ip = dir.byName.get(host);
  if (ip === undefined) return refuse(REP_HOST_UNREACHABLE, `no node named "${printable(host)}"`);
  if (ip === "") return refuse(REP_HOST_UNREACHABLE, `node ${host} lists no IPv4 address`);
  return connect(host, ip, req.port, self);
}

function connect(node: string, ip: string, port: number, self: string): SocksPlan {
  return { kind: "connect", node, ip, port, local: node === self.toLowerCase() };
}

function refuse(code: number, reason: string): SocksPlan {
  return { kind: "refuse", code, reason };
}

/** A name from the wire, safe to log (control bytes escaped, length bounded). */
function printable(s: string): string {
  return s.slice(0, 64).replace(/[^\x20-\x7e]/g, "?");
}

/**
 * The reply for a dial that failed: the tunnel's codes (the far agent answered FAILED: it could
 * not connect; no route to the peer) and the socket errors of a local dial.
 */
export function replyForDialError(error: Error | null | undefined): number {
  switch ((error as { code?: unknown } | null | undefined)?.code) {
    case "PROXY_REFUSED":
    case "ECONNREFUSED":
      return REP_CONNECTION_REFUSED;
    case "NO_PEER":
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "EHOSTDOWN":
      return REP_HOST_UNREACHABLE;
    case "ENETUNREACH":
      return REP_NETWORK_UNREACHABLE;
    default:
      return REP_GENERAL_FAILURE;
  }
}
