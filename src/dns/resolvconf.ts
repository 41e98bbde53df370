// Where forwarded questions go: configured upstreams, or the node's /etc/resolv.conf minus our
// own address (pods point resolv.conf at us; forwarding to ourselves would loop).
import type { Upstream } from "./upstream.ts";

/** "ip", "ip:port", "[v6]:port" or bare "v6" -> host and port (53 by default). */
export function parseUpstream(text: string): Upstream {
  const t = text.trim();
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(t);
  if (bracket) return { host: bracket[1]!, port: checkPort(bracket[2] ?? "53", text) };
  const colons = t.split(":").length - 1;
  if (colons === 1) {
    const [host, port] = t.split(":");
    return { host: host!, port: checkPort(port!, text) };
  }
  if (t === "") throw new Error(`empty DNS upstream`);
  return { host: t, port: 53 };
}

function checkPort(p: string, text: string): number {
  const n = Number(p);
  if (!/^\d+$/.test(p) || n < 1 || n > 65535) throw new Error(`bad port in DNS upstream "${text}"`);
  return n;
}

/** The nameserver lines of a resolv.conf text, in order. */
export function parseResolvConf(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (m) out.push(m[1]!);
  }
  return out;
}

/** Upstreams from resolv.conf text, skipping the address we listen on ourselves. */
export function upstreamsFromResolvConf(text: string, self: { host: string; port: number }): Upstream[] {
  return parseResolvConf(text)
    .map(parseUpstream)
    .filter((u) => !(u.port === self.port && (u.host === self.host || (self.host === "0.0.0.0" && isLocal(u.host)))));
}

function isLocal(host: string): boolean {
  return host.startsWith("127.") || host === "::1";
}
