// IPv4 addresses and CIDRs as numbers, for the Edge CNI compile (which pod CIDR is in which
// segment or LAN) and its longest-prefix lookup. IPv4 only: the tunneled pod path carries IPv4
// (see cni.ts); IPv6 ranges are reported and left alone.

/** A parsed IPv4 CIDR with the host bits cleared, e.g. "10.244.1.0/24". */
export interface Cidr4 {
  readonly text: string;
  /** Network address as an unsigned 32-bit number. */
  readonly net: number;
  readonly bits: number;
}

/** Dotted quad -> unsigned 32-bit number; undefined when `s` is not exactly an IPv4 address. */
export function parseIPv4(s: string): number | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p)) return undefined;
    const v = Number(p);
    if (v > 255) return undefined;
    n = n * 256 + v;
  }
  return n;
}

export function formatIPv4(n: number): string {
  return `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

/** The netmask of a prefix length as an unsigned number (/0 -> 0). */
export function maskOf(bits: number): number {
  return bits === 0 ? 0 : (0xffff_ffff << (32 - bits)) >>> 0;
}

/** "a.b.c.d/len" (host bits may be set, as Go's net.ParseCIDR allows) -> the network. */
export function parseCidr4(s: string): Cidr4 | undefined {
  const slash = s.indexOf("/");
  if (slash < 0) return undefined;
  const ip = parseIPv4(s.slice(0, slash));
  const len = s.slice(slash + 1);
  if (ip === undefined || !/^\d{1,2}$/.test(len) || Number(len) > 32) return undefined;
  const bits = Number(len);
  const net = (ip & maskOf(bits)) >>> 0;
  return { text: `${formatIPv4(net)}/${bits}`, net, bits };
}

/** Does `outer` contain the address `ip`? */
export function containsIp(outer: Cidr4, ip: number): boolean {
  return ((ip & maskOf(outer.bits)) >>> 0) === outer.net;
}

/** Is all of `inner` inside `outer`? */
export function covers(outer: Cidr4, inner: Cidr4): boolean {
  return outer.bits <= inner.bits && containsIp(outer, inner.net);
}

export function overlaps(a: Cidr4, b: Cidr4): boolean {
  return covers(a, b) || covers(b, a);
}
