// Value checks used by the schema. Each returns undefined when the value is fine, or the
// "expected ..." half of an error message; the walker adds the key path and the bad value.

import { isIP } from "node:net";

export type Check<T> = (value: T) => string | undefined;

export const ip: Check<string> = (s) => (isIP(s) ? undefined : "expected an IP address");

/** "IP" or "IP:PORT" ("[v6]:PORT" for IPv6), as resolvers are written. */
export const ipMaybePort: Check<string> = (s) => {
  if (isIP(s)) return undefined;
  const hp = splitHostPort(s);
  if (hp && isIP(hp.host) && hp.port >= 1) return undefined;
  return "expected an IP address or IP:PORT";
};

/** HOST:PORT for a listener; port 0 asks the OS for a free port. */
export const listenAddress: Check<string> = (s) => {
  const hp = splitHostPort(s);
  if (hp && (isIP(hp.host) || isHostname(hp.host))) return undefined;
  return "expected HOST:PORT with a port in 0..65535";
};

export function splitHostPort(s: string): { host: string; port: number } | undefined {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[2]);
  return port <= 65535 ? { host: m[1]!, port } : undefined;
}

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i;

export function isHostname(s: string): boolean {
  return s.length > 0 && s.length <= 253 && s.split(".").every((l) => LABEL.test(l));
}

export const dnsDomain: Check<string> = (s) =>
  isHostname(s.endsWith(".") ? s.slice(0, -1) : s) ? undefined : "expected a DNS domain such as cluster.local";

/** Linux interface names: 1..15 bytes, no slash, colon or whitespace (IFNAMSIZ - 1). */
export function isIfName(s: string): boolean {
  return s.length >= 1 && s.length <= 15 && !/[\s/:]/.test(s);
}

export const ifName: Check<string> = (s) =>
  isIfName(s) ? undefined : "expected a network interface name (1-15 characters, no '/', ':' or spaces)";

/** "*" or "" for all, else a comma list of interface names ("lo,eth0"). */
export const ifList: Check<string> = (s) =>
  s === "*" || s === "" || s.split(",").every((p) => isIfName(p.trim()))
    ? undefined
    : 'expected "*" or a comma list of interface names such as "lo,eth0"';

/** "*" or "" for all, else a comma list of IPs or CIDRs ("192.168.1.56,10.3.0.0/16"), as EdgeMesh's gateway reads includeIP/excludeIP. */
export const ipList: Check<string> = (s) =>
  s === "*" || s === "" || s.split(",").every((p) => isIpOrCidr(p.trim()))
    ? undefined
    : 'expected "*" or a comma list of IP addresses or CIDRs such as "192.168.1.56,10.3.0.0/16"';

function isIpOrCidr(s: string): boolean {
  const slash = s.indexOf("/");
  if (slash < 0) return isIP(s) !== 0;
  const family = isIP(s.slice(0, slash));
  const bits = s.slice(slash + 1);
  return family !== 0 && /^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128);
}

/** An http(s) URL with a host, such as the MetaServer address. */
export const httpUrl: Check<string> = (s) => {
  try {
    const u = new URL(s);
    if ((u.protocol === "http:" || u.protocol === "https:") && u.hostname !== "") return undefined;
  } catch {
    // fall through to the message
  }
  return "expected an http:// or https:// URL";
};

export const nonEmpty: Check<string> = (s) => (s.trim() !== "" ? undefined : "expected a non-empty string");

export const ipOrEmpty: Check<string> = (s) => (s === "" || isIP(s) ? undefined : "expected an IP address or \"\"");

/** "IP/LEN" as Go's net.ParseCIDR takes it (host bits may be set), IPv4 or IPv6. */
export const cidr: Check<string> = (s) => {
  const slash = s.indexOf("/");
  const family = slash > 0 ? isIP(s.slice(0, slash)) : 0;
  const len = s.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (family !== 0 && /^\d{1,3}$/.test(len) && Number(len) <= max) return undefined;
  return "expected a CIDR such as 10.244.0.0/16";
};

/** "", an IP address, or an interface name (EdgeMesh's encapIP has been read as either). */
export const ipOrIfNameOrEmpty: Check<string> = (s) =>
  s === "" || isIP(s) || isIfName(s) ? undefined : 'expected an IP address, an interface name or ""';

/** Edit distance, for "did you mean" on unknown keys. Keys are short; O(n*m) is fine. */
export function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]!;
      row[j] = Math.min(cur + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = cur;
    }
  }
  return row[b.length]!;
}
