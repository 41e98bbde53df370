// Who holds a port: read only when a listen failed with EADDRINUSE, so the start-up error can name
// the process ("held by pid 812 (dnsmasq)"). Sockets come from /proc/net/{tcp,udp}[6] of our own
// network namespace, their owners from /proc/<pid>/fd links (socket:[inode]). In a pod without
// hostPID the owner is often invisible; the caller then says so and how to look on the node.

import { readdirSync, readFileSync, readlinkSync } from "node:fs";

export type Protocol = "tcp" | "udp";

export interface SocketEntry {
  readonly protocol: Protocol;
  readonly ip: string;
  readonly port: number;
  /** Kernel state: 0x0A TCP_LISTEN; bound UDP sockets show 0x07. */
  readonly state: number;
  readonly inode: number;
}

export interface PortHolder {
  readonly pid: number;
  readonly command: string;
}

const TCP_LISTEN = 0x0a;

/** One /proc/net/{tcp,udp}[6] file; addresses are hex words in host (little-endian) order. */
export function parseProcNet(text: string, protocol: Protocol): SocketEntry[] {
  const out: SocketEntry[] = [];
  for (const line of text.split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [addr, portHex] = f[1]!.split(":");
    if (!addr || !portHex) continue;
    out.push({ protocol, ip: hexToIp(addr), port: parseInt(portHex, 16), state: parseInt(f[3]!, 16), inode: Number(f[9]) });
  }
  return out;
}

function hexToIp(hex: string): string {
  const words = hex.match(/.{8}/g) ?? [];
  const bytes = words.flatMap((w) => [w.slice(6, 8), w.slice(4, 6), w.slice(2, 4), w.slice(0, 2)].map((b) => parseInt(b, 16)));
  if (bytes.length === 4) return bytes.join(".");
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return bytes.slice(12).join(".");
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}

/** Sockets that make a bind to ip:port fail: same port, same address or a wildcard on either side. */
export function conflicting(entries: readonly SocketEntry[], protocol: Protocol, ip: string, port: number): SocketEntry[] {
  const wildcard = (a: string) => a === "0.0.0.0" || a === "::";
  return entries.filter(
    (e) => e.protocol === protocol && e.port === port && (protocol === "udp" || e.state === TCP_LISTEN) && (e.ip === ip || wildcard(e.ip) || wildcard(ip)),
  );
}

export interface ProcReader {
  readFile(path: string): string;
  readdir(path: string): string[];
  readlink(path: string): string;
}

const realProc: ProcReader = {
  readFile: (p) => readFileSync(p, "utf8"),
  readdir: (p) => readdirSync(p),
  readlink: (p) => readlinkSync(p),
};

/** Processes holding a socket that conflicts with ip:port (empty when none can be seen). */
export function findPortHolders(protocol: Protocol, ip: string, port: number, proc: ProcReader = realProc): PortHolder[] {
  const entries: SocketEntry[] = [];
  for (const file of [protocol, `${protocol}6`]) {
    try {
      entries.push(...parseProcNet(proc.readFile(`/proc/net/${file}`), protocol));
    } catch {
      // no IPv6, or no /proc: nothing to report from this file
    }
  }
  const inodes = new Set(conflicting(entries, protocol, ip, port).map((e) => e.inode).filter((i) => i > 0));
  if (inodes.size === 0) return [];
  const holders: PortHolder[] = [];
  let pids: string[];
  try {
    pids = proc.readdir("/proc").filter((d) => /^\d+$/.test(d));
  } catch {
    return [];
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = proc.readdir(`/proc/${pid}/fd`);
    } catch {
      continue; // gone, or not ours to read
    }
    for (const fd of fds) {
      let link: string;
      try {
        link = proc.readlink(`/proc/${pid}/fd/${fd}`);
      } catch {
        continue;
      }
      const m = /^socket:\[(\d+)\]$/.exec(link);
      if (!m || !inodes.has(Number(m[1]))) continue;
      let command = "?";
      try {
        command = proc.readFile(`/proc/${pid}/comm`).trim();
      } catch {
        // exited meanwhile
      }
      holders.push({ pid: Number(pid), command });
      break;
    }
  }
  return holders;
}
