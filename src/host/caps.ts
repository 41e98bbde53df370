// Linux capabilities the agent needs, checked before it creates anything: a root process in a
// container can still lack NET_ADMIN (the runtime's default set has no NET_ADMIN), and then
// `ip link add` fails with a bare "Operation not permitted". We read CapEff and name what is
// missing, why it is needed and how to grant it.

import { readFileSync } from "node:fs";
import { HostError } from "./errors.ts";

/** Capability numbers (linux/capability.h). */
export const CAP = { NET_BIND_SERVICE: 10, NET_ADMIN: 12, NET_RAW: 13 } as const;
export type CapName = keyof typeof CAP;

export interface CapNeed {
  readonly cap: CapName;
  /** What it is for, for the message ("the edgemesh0 device and iptables rules"). */
  readonly why: string;
}

/** The effective set from /proc/self/status ("CapEff:\t000001ffffffffff"); undefined if unreadable. */
export function readEffectiveCaps(status?: string): bigint | undefined {
  let text = status;
  if (text === undefined) {
    try {
      text = readFileSync("/proc/self/status", "utf8");
    } catch {
      return undefined;
    }
  }
  const m = /^CapEff:\s*([0-9a-f]+)\s*$/m.exec(text);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

export function hasCap(effective: bigint, cap: CapName): boolean {
  return ((effective >> BigInt(CAP[cap])) & 1n) === 1n;
}

/** The needs not met by `effective`, in the order given. */
export function missingCapabilities(effective: bigint, needs: readonly CapNeed[]): CapNeed[] {
  return needs.filter((n) => !hasCap(effective, n.cap));
}

/** Lowest port an unprivileged process may bind (net.ipv4.ip_unprivileged_port_start, 1024 by default). */
export function unprivilegedPortStart(read: () => string = () => readFileSync("/proc/sys/net/ipv4/ip_unprivileged_port_start", "utf8")): number {
  try {
    const n = Number(read().trim());
    return Number.isInteger(n) ? n : 1024;
  } catch {
    return 1024;
  }
}

/**
 * Throw one line naming every missing capability and what needs it, when CapEff can be read
 * (without /proc the later system calls will say what failed).
 */
export function requireCapabilities(what: string, needs: readonly CapNeed[], effective: bigint | undefined = readEffectiveCaps()): void {
  if (effective === undefined) return;
  const missing = missingCapabilities(effective, needs);
  if (missing.length === 0) return;
  const names = missing.map((m) => m.cap);
  const list = missing.map((m) => `${m.cap} (${m.why})`).join(", ");
  throw new HostError(
    `${what} is missing the capabilit${missing.length === 1 ? "y" : "ies"} ${list}. ` +
      `Grant ${names.length === 1 ? "it" : "them"}: in Kubernetes, securityContext.capabilities.add: [${names.join(", ")}] ` +
      `(deploy/base/daemonset.yaml has them); with docker or podman, --cap-add ${names.join(" --cap-add ")}.`,
  );
}
