// Which addresses the gateway listens on: EdgeMesh's GetIPsNeedListen (pkg/gateway/util.go) as a
// pure function of the interface list. The IPv4 addresses of the NICs named by `nic` ("*" or ""
// = every interface, loopback included, as EdgeMesh's net.Interfaces() walk), kept when they
// match `includeIP` ("*"/"" = all) and dropped when they match `excludeIP`. Both lists take IPs
// and CIDRs. EdgeMesh's default excludeIP is "*", which its code compares as an IP and so
// excludes nothing; we read "*" the same way.

import { isIPv4 } from "node:net";

/** The shape of os.networkInterfaces(), narrowed to what selection reads. */
export type InterfaceList = Readonly<Record<string, readonly { readonly address: string; readonly family: string | number }[] | undefined>>;

export interface NicSelection {
  readonly nic: string;
  readonly includeIP: string;
  readonly excludeIP: string;
}

export interface SelectedAddresses {
  /** Sorted, unique IPv4 addresses. */
  readonly addresses: readonly string[];
  /** NICs named in `nic` that do not exist now (they may appear later). */
  readonly missing: readonly string[];
}

export function selectAddresses(interfaces: InterfaceList, selection: NicSelection): SelectedAddresses {
  const wanted = listOf(selection.nic);
  const names = wanted === null ? Object.keys(interfaces).sort() : wanted;
  const missing: string[] = [];
  const found = new Set<string>();
  for (const name of names) {
    const addrs = interfaces[name];
    if (addrs === undefined) {
      missing.push(name);
      continue;
    }
    for (const a of addrs) {
      // Node reports family as "IPv4" (or 4 in some versions); EdgeMesh keeps 4-byte masks only.
      if ((a.family === "IPv4" || a.family === 4) && isIPv4(a.address)) found.add(a.address);
    }
  }
  const include = listOf(selection.includeIP);
  const exclude = listOf(selection.excludeIP);
  const includeMatchers = include === null ? null : include.map(matcher);
  const excludeMatchers = exclude === null ? [] : exclude.map(matcher);
  const addresses = [...found]
    .filter((ip) => includeMatchers === null || includeMatchers.some((m) => m(ip)))
    .filter((ip) => !excludeMatchers.some((m) => m(ip)))
    .sort(compareIPv4);
  return { addresses, missing };
}

/** null for "*" / "" (everything), else the trimmed, non-empty items. */
function listOf(value: string): string[] | null {
  const v = value.trim();
  if (v === "" || v === "*") return null;
  return v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
}

/** An IP or CIDR as a predicate on IPv4 addresses; anything else ("*", IPv6) matches nothing. */
function matcher(item: string): (ip: string) => boolean {
  const slash = item.indexOf("/");
  if (slash < 0) return (ip) => ip === item;
  const base = item.slice(0, slash);
  const bits = Number(item.slice(slash + 1));
  if (!isIPv4(base) || !Number.isInteger(bits) || bits < 0 || bits > 32) return () => false;
  const mask = bits === 0 ? 0 : (~0 << (32 - bits)) >>> 0;
  const net = (toInt(base) & mask) >>> 0;
  return (ip) => ((toInt(ip) & mask) >>> 0) === net;
}

function toInt(ip: string): number {
  const p = ip.split(".");
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

function compareIPv4(a: string, b: string): number {
  return toInt(a) - toInt(b);
}
