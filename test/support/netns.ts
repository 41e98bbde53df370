// The multi-node test bed: a topology of network namespaces built from a small description.
//
//   switch ns (one per run)        node ns (one per node)              pod ns (one per pod)
//   br0 (LAN "a") ── vn0 ══ veth ══ eth0 10.10.0.11/24                 eth0 10.244.1.5/24
//   br1 (LAN "b") ...               cni0 10.244.1.1/24 ── vp0 ══ veth ══ default via 10.244.1.1
//                                   edgemesh0 169.254.96.16/32 (made by the agent)
//
// LAN bridges live in a dedicated "switch" namespace and every interface lives inside a
// namespace of this run: nothing is created in the root namespace. Pods are namespaces of their
// own behind a CNI-like bridge, so their traffic reaches the node through PREROUTING (as real pod
// traffic does) while processes started on the node itself go through OUTPUT. A router joins two
// LANs and masquerades the inside one, like the NAT gateway of an edge site.

import { mkdirSync, writeFileSync } from "node:fs";
import { spawnWatched, type Watched } from "./process.ts";
import { deleteNamespace, newRunId, nsName, sweepStale } from "./testbed/names.ts";
import { inNs, must, run, type RunResult } from "./testbed/sh.ts";

export const BRIDGE_IP = "169.254.96.16";
export const RESOLV_CONF = `nameserver ${BRIDGE_IP}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n`;

export interface LanSpec {
  name: string;
  /** e.g. "10.10.0.0/24"; node IPs come from here. */
  cidr: string;
}
export interface NodeSpec {
  name: string;
  lan: string;
  ip: string;
  /** e.g. "10.244.1.0/24"; the node's pod bridge takes the first address. */
  podCidr: string;
  /** More NICs on other LANs (eth1, eth2, ... in order), e.g. an edge gateway's outside LAN. */
  extraNics?: { lan: string; ip: string }[];
}
/** A router namespace joining two LANs: nodes of `inside` route through it by default, and
 * their traffic leaves towards `outside` masqueraded to `outsideIP` (a home/NAT gateway). */
export interface RouterSpec {
  name: string;
  inside: string;
  insideIP: string;
  outside: string;
  outsideIP: string;
  /** MASQUERADE on the outside interface (default true); false = a plain router. */
  nat?: boolean;
  /** MASQUERADE --random: a fresh random source port per flow (endpoint-dependent mapping, a
   * "symmetric" NAT that defeats hole punching). Default false: Linux keeps the source port
   * when it is free (endpoint-independent mapping). */
  randomPorts?: boolean;
  /** Drop unsolicited packets from the outside addressed to the router itself, as home
   * gateways do. Besides realism this matters for hole punching: a dropped packet leaves no
   * conntrack entry, while an accepted one (even to a closed port) leaves an entry that makes
   * the NAT pick another port for the inside host's own packet to that peer a moment later. */
  firewall?: boolean;
}
export interface TopologySpec {
  lans: LanSpec[];
  nodes: NodeSpec[];
  routers?: RouterSpec[];
  /** Route each node's pod CIDR via its node IP on every other node of the same LAN, as a
   * host-gw CNI does. Off by default: edge nodes usually cannot reach each other's pods, which
   * is what the tunnel is for. */
  podRoutes?: boolean;
}

/**
 * The usual bed: `count` nodes n1..nN on one LAN 10.10.0.0/24 (node i at 10.10.0.1i, pods in
 * 10.244.i.0/24), plus whatever else the test sets (podRoutes, more LANs, routers, nodes).
 */
export function oneLan(count: number, extra: Partial<TopologySpec> = {}): TopologySpec {
  const nodes: NodeSpec[] = [];
  for (let i = 1; i <= count; i++) nodes.push({ name: `n${i}`, lan: "lan", ip: `10.10.0.${10 + i}`, podCidr: `10.244.${i}.0/24` });
  return { ...extra, lans: [{ name: "lan", cidr: "10.10.0.0/24" }, ...(extra.lans ?? [])], nodes: [...nodes, ...(extra.nodes ?? [])] };
}

/**
 * Two sites behind NAT routers, the cross-LAN bed of the tunnel tests: LAN site-a (192.168.1.0/24,
 * router ra at .1) and site-b (192.168.2.0/24, router rb), both NATed onto LAN pub (`${pub}.0/24`,
 * the routers' outside addresses .1 and .2), n1 at 192.168.1.11 and n2 at 192.168.2.11 (pods
 * 10.244.1.0/24 and 10.244.2.0/24). `extra.nodes` come first (relays on pub, more site nodes).
 * pub "11.0.0" is a range libp2p treats as public, which hole punching needs; the default
 * "10.0.0" is private. `nat` applies to both routers.
 */
export function twoSites(
  opts: { pub?: string; nat?: Pick<RouterSpec, "randomPorts" | "firewall"> } = {},
  extra: Partial<TopologySpec> = {},
): TopologySpec {
  const pub = opts.pub ?? "10.0.0";
  return {
    ...extra,
    lans: [
      { name: "pub", cidr: `${pub}.0/24` },
      { name: "site-a", cidr: "192.168.1.0/24" },
      { name: "site-b", cidr: "192.168.2.0/24" },
      ...(extra.lans ?? []),
    ],
    routers: [
      { name: "ra", inside: "site-a", insideIP: "192.168.1.1", outside: "pub", outsideIP: `${pub}.1`, ...opts.nat },
      { name: "rb", inside: "site-b", insideIP: "192.168.2.1", outside: "pub", outsideIP: `${pub}.2`, ...opts.nat },
      ...(extra.routers ?? []),
    ],
    nodes: [
      ...(extra.nodes ?? []),
      { name: "n1", lan: "site-a", ip: "192.168.1.11", podCidr: "10.244.1.0/24" },
      { name: "n2", lan: "site-b", ip: "192.168.2.11", podCidr: "10.244.2.0/24" },
    ],
  };
}

/** Something that can run commands inside one namespace. */
export interface Place {
  readonly ns: string;
  readonly ip: string;
  exec(argv: readonly string[], options?: { stdin?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<RunResult>;
  must(argv: readonly string[], options?: { stdin?: string; env?: Record<string, string>; timeoutMs?: number }): Promise<RunResult>;
  /** A long-running process in this namespace; killed at teardown if still running. */
  spawn(argv: readonly string[], options?: { env?: Record<string, string>; cwd?: string }): Watched;
}
export interface Pod extends Place {
  readonly name: string;
  readonly node: TestNode;
}
export interface TestNode extends Place {
  readonly name: string;
  readonly podCidr: string;
  readonly podGateway: string;
  addPod(name: string, ip: string): Promise<Pod>;
}
export interface Testbed {
  readonly runId: string;
  node(name: string): TestNode;
  /** A router's namespace (its inside address), e.g. to read conntrack or iptables counters. */
  router(name: string): Place;
  /** Kill every process, delete every namespace of this run. Safe to call twice. */
  destroy(): Promise<void>;
}

export function prefixLength(cidr: string): number {
  return Number(cidr.split("/")[1] ?? 32);
}
export function firstHost(cidr: string): string {
  const [base] = cidr.split("/");
  const o = base!.split(".").map(Number);
  o[3] = o[3]! + 1;
  return o.join(".");
}

/** Build a topology. On any failure the partial topology is removed before the error surfaces. */
export async function createTestbed(spec: TopologySpec): Promise<Testbed> {
  await sweepStale();
  const runId = newRunId();
  const namespaces: string[] = [];
  const processes: Watched[] = [];
  let destroyed = false;

  const addNs = async (label: string, resolv: boolean): Promise<string> => {
    const ns = nsName(runId, label);
    await must(["ip", "netns", "add", ns]);
    namespaces.push(ns);
    await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
    if (resolv) {
      mkdirSync(`/etc/netns/${ns}`, { recursive: true });
      writeFileSync(`/etc/netns/${ns}/resolv.conf`, RESOLV_CONF);
    }
    return ns;
  };
  const place = (ns: string, ip: string): Place => ({
    ns,
    ip,
    exec: (argv, o) => run(inNs(ns, argv), o),
    must: (argv, o) => must(inNs(ns, argv), o),
    spawn(argv, o) {
      const w = spawnWatched(inNs(ns, argv), { env: o?.env, cwd: o?.cwd });
      processes.push(w);
      return w;
    },
  });

  const destroy = async () => {
    if (destroyed) return;
    destroyed = true;
    await Promise.all(processes.map((p) => p.kill("SIGKILL").catch(() => 0)));
    for (const ns of namespaces.reverse()) await deleteNamespace(ns);
  };

  try {
    const sw = await addNs("sw", false);
    const lanBridge = new Map<string, string>();
    for (const [i, lan] of spec.lans.entries()) {
      const br = `br${i}`;
      await must(["ip", "-n", sw, "link", "add", br, "type", "bridge"]);
      await must(["ip", "-n", sw, "link", "set", br, "up"]);
      lanBridge.set(lan.name, br);
    }
    const routerFor = new Map<string, string>();
    const routers = new Map<string, Place>();
    for (const [i, r] of (spec.routers ?? []).entries()) {
      const ns = await addNs(`r-${r.name}`, false);
      const sides = [
        { lan: r.inside, ip: r.insideIP, dev: "in0", peer: `ri${i}` },
        { lan: r.outside, ip: r.outsideIP, dev: "out0", peer: `ro${i}` },
      ];
      for (const side of sides) {
        const lan = spec.lans.find((l) => l.name === side.lan);
        if (!lan) throw new Error(`router ${r.name}: unknown LAN ${side.lan}`);
        await must(["ip", "-n", ns, "link", "add", side.dev, "type", "veth", "peer", "name", side.peer, "netns", sw]);
        await must(["ip", "-n", sw, "link", "set", side.peer, "master", lanBridge.get(side.lan)!, "up"]);
        await must(["ip", "-n", ns, "addr", "add", `${side.ip}/${prefixLength(lan.cidr)}`, "dev", side.dev]);
        await must(["ip", "-n", ns, "link", "set", side.dev, "up"]);
      }
      await must(inNs(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
      // The router's own iptables, inside its own namespace.
      if (r.nat !== false) await must(inNs(ns, ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "out0", "-j", "MASQUERADE", ...(r.randomPorts ? ["--random"] : [])]));
      if (r.firewall) await must(inNs(ns, ["iptables", "-A", "INPUT", "-i", "out0", "-m", "conntrack", "--ctstate", "NEW,INVALID", "-j", "DROP"]));
      routerFor.set(r.inside, r.insideIP);
      routers.set(r.name, place(ns, r.insideIP));
    }

    const nodes = new Map<string, TestNode>();
    for (const [i, n] of spec.nodes.entries()) {
      const lan = spec.lans.find((l) => l.name === n.lan);
      if (!lan) throw new Error(`node ${n.name}: unknown LAN ${n.lan}`);
      const ns = await addNs(n.name, true);
      const peer = `vn${i}`;
      // Created from inside the node namespace with the peer placed straight into the switch.
      await must(["ip", "-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", peer, "netns", sw]);
      await must(["ip", "-n", sw, "link", "set", peer, "master", lanBridge.get(n.lan)!, "up"]);
      await must(["ip", "-n", ns, "addr", "add", `${n.ip}/${prefixLength(lan.cidr)}`, "dev", "eth0"]);
      await must(["ip", "-n", ns, "link", "set", "eth0", "up"]);
      // Any route will do for service IPs (DNAT re-routes them locally); without one, connect()
      // to a cluster IP fails with ENETUNREACH before OUTPUT sees the packet.
      const router = routerFor.get(n.lan);
      await must(["ip", "-n", ns, "route", "add", "default", ...(router ? ["via", router] : ["dev", "eth0"])]);
      for (const [k, nic] of (n.extraNics ?? []).entries()) {
        const other = spec.lans.find((l) => l.name === nic.lan);
        if (!other) throw new Error(`node ${n.name}: unknown LAN ${nic.lan}`);
        const dev = `eth${k + 1}`;
        const swPeer = `vn${i}x${k}`;
        await must(["ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", swPeer, "netns", sw]);
        await must(["ip", "-n", sw, "link", "set", swPeer, "master", lanBridge.get(nic.lan)!, "up"]);
        await must(["ip", "-n", ns, "addr", "add", `${nic.ip}/${prefixLength(other.cidr)}`, "dev", dev]);
        await must(["ip", "-n", ns, "link", "set", dev, "up"]);
      }
      const gw = firstHost(n.podCidr);
      await must(["ip", "-n", ns, "link", "add", "cni0", "type", "bridge"]);
      await must(["ip", "-n", ns, "addr", "add", `${gw}/${prefixLength(n.podCidr)}`, "dev", "cni0"]);
      await must(["ip", "-n", ns, "link", "set", "cni0", "up"]);
      await must(inNs(ns, ["sysctl", "-qw", "net.ipv4.ip_forward=1"]));
      let pods = 0;
      const node: TestNode = {
        ...place(ns, n.ip),
        name: n.name,
        podCidr: n.podCidr,
        podGateway: gw,
        async addPod(name, ip) {
          const pns = await addNs(`${n.name}-${name}`, true);
          const vp = `vp${pods++}`;
          await must(["ip", "-n", pns, "link", "add", "eth0", "type", "veth", "peer", "name", vp, "netns", ns]);
          await must(["ip", "-n", ns, "link", "set", vp, "master", "cni0", "up"]);
          await must(["ip", "-n", pns, "addr", "add", `${ip}/${prefixLength(n.podCidr)}`, "dev", "eth0"]);
          await must(["ip", "-n", pns, "link", "set", "eth0", "up"]);
          await must(["ip", "-n", pns, "route", "add", "default", "via", gw]);
          return { ...place(pns, ip), name, node };
        },
      };
      nodes.set(n.name, node);
    }
    if (spec.podRoutes) {
      for (const a of spec.nodes) {
        for (const b of spec.nodes) {
          if (a !== b && a.lan === b.lan) await must(["ip", "-n", nodes.get(a.name)!.ns, "route", "add", b.podCidr, "via", b.ip]);
        }
      }
    }
    return {
      runId,
      node(name) {
        const n = nodes.get(name);
        if (!n) throw new Error(`no node ${name}`);
        return n;
      },
      router(name) {
        const r = routers.get(name);
        if (!r) throw new Error(`no router ${name}`);
        return r;
      },
      destroy,
    };
  } catch (err) {
    await destroy();
    throw err;
  }
}

/** One bare namespace (lo up) for integration tests that need a private network stack. */
export async function createScratchNamespace(label = "scratch"): Promise<Place & { destroy(): Promise<void> }> {
  await sweepStale();
  const ns = nsName(newRunId(), label);
  await must(["ip", "netns", "add", ns]);
  const processes: Watched[] = [];
  try {
    await must(["ip", "-n", ns, "link", "set", "lo", "up"]);
  } catch (err) {
    await deleteNamespace(ns);
    throw err;
  }
  return {
    ns,
    ip: "127.0.0.1",
    exec: (argv, o) => run(inNs(ns, argv), o),
    must: (argv, o) => must(inNs(ns, argv), o),
    spawn(argv, o) {
      const w = spawnWatched(inNs(ns, argv), { env: o?.env, cwd: o?.cwd });
      processes.push(w);
      return w;
    },
    async destroy() {
      await Promise.all(processes.map((p) => p.kill("SIGKILL").catch(() => 0)));
      await deleteNamespace(ns);
    },
  };
}
