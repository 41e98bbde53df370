// Start-up failure pieces without a kernel: capabilities from /proc/self/status, port owners from
// /proc/net and /proc/<pid>/fd (fixtures in the kernel's format), the one-line listen errors,
// the undo stack, and what the agent needs for a given config.

import { describe, expect, test } from "bun:test";
import { loadConfig } from "../../src/control/index.ts";
import {
  conflicting, findPortHolders, HostError, missingCapabilities, parseProcNet, readEffectiveCaps, requireCapabilities,
  unprivilegedPortStart, type ProcReader,
} from "../../src/host/index.ts";
import { createMemoryLogger } from "../../src/log/index.ts";
import { capabilityNeeds } from "../../src/main/agent.ts";
import { createUndoStack, listenFailure, StartupError } from "../../src/main/startup.ts";

// NET_BIND_SERVICE (10), NET_ADMIN (12), NET_RAW (13): 0x3400.
const DAEMONSET_CAPS = 0x3400n;

describe("capabilities", () => {
  test("CapEff is read from /proc/self/status", () => {
    expect(readEffectiveCaps("Name:\tbun\nCapInh:\t0000000000000000\nCapEff:\t0000000000003400\nCapBnd:\t000001ffffffffff\n")).toBe(DAEMONSET_CAPS);
    expect(readEffectiveCaps("Name:\tbun\n")).toBeUndefined();
    expect(typeof readEffectiveCaps()).toBe("bigint"); // this process, on Linux
  });

  test("missing ones are named with what needs them and how to grant them, in one line", () => {
    const needs = [{ cap: "NET_ADMIN", why: "the edgemesh0 device" }, { cap: "NET_BIND_SERVICE", why: "DNS on 53" }] as const;
    expect(missingCapabilities(DAEMONSET_CAPS, needs)).toEqual([]);
    expect(missingCapabilities(0x2400n, needs).map((n) => n.cap)).toEqual(["NET_ADMIN"]);
    expect(() => requireCapabilities("edgemesh agent", needs, DAEMONSET_CAPS)).not.toThrow();
    expect(() => requireCapabilities("edgemesh agent", needs, undefined)).not.toThrow(); // no /proc: the syscalls will say
    let err: Error | undefined;
    try {
      requireCapabilities("edgemesh agent", needs, 0n);
    } catch (e) {
      err = e as Error;
    }
    expect(err).toBeInstanceOf(HostError);
    expect(err!.message).toBe(
      "edgemesh agent is missing the capabilities NET_ADMIN (the edgemesh0 device), NET_BIND_SERVICE (DNS on 53). " +
        "Grant them: in Kubernetes, securityContext.capabilities.add: [NET_ADMIN, NET_BIND_SERVICE] (deploy/base/daemonset.yaml has them); " +
        "with docker or podman, --cap-add NET_ADMIN --cap-add NET_BIND_SERVICE.",
    );
    expect(err!.message).not.toContain("\n");
  });

  test("the agent needs NET_ADMIN always, NET_BIND_SERVICE for low ports, NET_RAW with legacy iptables", () => {
    const caps = (yaml: string, from = 1024, backend?: "nft" | "legacy") =>
      capabilityNeeds(loadConfig({ text: `apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\n${yaml}` }), from, backend).map((n) => n.cap);
    expect(caps("modules:\n  edgeDNS:\n    enable: true\n")).toEqual(["NET_ADMIN", "NET_BIND_SERVICE"]);
    expect(caps("modules:\n  edgeDNS:\n    enable: true\n", 0)).toEqual(["NET_ADMIN"]); // ip_unprivileged_port_start=0
    expect(caps("modules:\n  edgeDNS:\n    enable: true\n    listenPort: 5353\n")).toEqual(["NET_ADMIN"]);
    expect(caps("modules:\n  edgeDNS:\n    enable: false\n")).toEqual(["NET_ADMIN"]);
    expect(caps("modules:\n  edgeDNS:\n    enable: false\n  edgeProxy:\n    enable: true\n", 1024, "legacy")).toEqual(["NET_ADMIN", "NET_RAW"]);
    // The Edge CNI's TUN device and routes need nothing beyond NET_ADMIN, and the reason says so.
    const cni = capabilityNeeds(loadConfig({ text: "apiVersion: agent.edgemesh.config.kubeedge.io/v1alpha1\nmodules:\n  edgeDNS:\n    enable: false\n  edgeTunnel:\n    enable: true\n  edgeCNI:\n    enable: true\n" }), 1024);
    expect(cni.map((n) => n.cap)).toEqual(["NET_ADMIN"]);
    expect(cni[0]!.why).toContain("TUN device");
    expect(unprivilegedPortStart(() => "80\n")).toBe(80);
    expect(unprivilegedPortStart(() => { throw new Error("no /proc"); })).toBe(1024);
  });
});

// Captured from a machine: 127.0.0.1:36301 listening, ::/0.0.0.0 wildcards, a bound UDP socket.
const PROC_TCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:8DCD 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1069989 1 0000000006289765 100 0 0 10 0
   1: 00000000:0035 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000006289765 100 0 0 10 0
   2: 1060FEA9:0035 0B0A0A0A:D3B8 01 00000000:00000000 00:00000000 00000000     0        0 5151 1 0000000006289765 100 0 0 10 0
`;
const PROC_TCP6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2911 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7070 1 000000002366f692 100 0 0 10 0
   1: 0000000000000000FFFF00000100007F:9391 0000000000000000FFFF00000100007F:D3B8 06 00000000:00000000 03:00000E2C 00000000     0        0 0 3 000000000cfa4bb9
   2: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9090 1 000000002366f692 100 0 0 10 0
`;
const PROC_UDP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
15711: 1060FEA9:0035 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 979529 2 00000000d6bd2ecd 0
`;

describe("who holds a port", () => {
  test("/proc/net lines parse to address, port, state and inode", () => {
    expect(parseProcNet(PROC_TCP, "tcp")).toEqual([
      { protocol: "tcp", ip: "127.0.0.1", port: 36301, state: 0x0a, inode: 1069989 },
      { protocol: "tcp", ip: "0.0.0.0", port: 53, state: 0x0a, inode: 4242 },
      { protocol: "tcp", ip: "169.254.96.16", port: 53, state: 0x01, inode: 5151 },
    ]);
    expect(parseProcNet(PROC_TCP6, "tcp").map((e) => `${e.ip} ${e.port}`)).toEqual([":: 10513", "127.0.0.1 37777", "::1 53"]);
    expect(parseProcNet(PROC_UDP, "udp")).toEqual([{ protocol: "udp", ip: "169.254.96.16", port: 53, state: 7, inode: 979529 }]);
  });

  test("a listener conflicts on its own address or through a wildcard; established connections do not", () => {
    const tcp = parseProcNet(PROC_TCP, "tcp");
    expect(conflicting(tcp, "tcp", "169.254.96.16", 53).map((e) => e.inode)).toEqual([4242]); // 0.0.0.0:53, not the connection
    expect(conflicting(tcp, "tcp", "127.0.0.1", 36301).map((e) => e.inode)).toEqual([1069989]);
    expect(conflicting(tcp, "tcp", "10.0.0.1", 36301)).toEqual([]);
    expect(conflicting(parseProcNet(PROC_UDP, "udp"), "udp", "169.254.96.16", 53).map((e) => e.inode)).toEqual([979529]);
  });

  test("the owner is found through /proc/<pid>/fd socket links", () => {
    const proc: ProcReader = {
      readFile: (p) => ({ "/proc/net/tcp": PROC_TCP, "/proc/net/tcp6": PROC_TCP6, "/proc/812/comm": "dnsmasq\n", "/proc/900/comm": "sshd\n" })[p] ?? (() => { throw new Error(`ENOENT ${p}`); })(),
      readdir: (p) => ({ "/proc": ["1", "812", "900", "self", "sys"], "/proc/1/fd": [], "/proc/812/fd": ["0", "5"], "/proc/900/fd": ["3"] })[p] ?? (() => { throw new Error(`EACCES ${p}`); })(),
      readlink: (p) => ({ "/proc/812/fd/0": "/dev/null", "/proc/812/fd/5": "socket:[4242]", "/proc/900/fd/3": "socket:[1069989]" })[p] ?? "",
    };
    expect(findPortHolders("tcp", "169.254.96.16", 53, proc)).toEqual([{ pid: 812, command: "dnsmasq" }]);
    expect(findPortHolders("tcp", "127.0.0.1", 36301, proc)).toEqual([{ pid: 900, command: "sshd" }]);
    expect(findPortHolders("tcp", "127.0.0.1", 9, proc)).toEqual([]);
    expect(findPortHolders("udp", "127.0.0.1", 53, proc)).toEqual([]); // no /proc/net/udp readable
  });
});

describe("listen failures", () => {
  const site = { what: "DNS", key: "modules.edgeDNS.listenPort", host: "169.254.96.16", port: 53, protocols: ["udp", "tcp"] as const };
  const inUse = Object.assign(new Error("Failed to listen at 169.254.96.16"), { code: "EADDRINUSE" });

  test("a taken port names address, key, holder and fix in one line", () => {
    const err = listenFailure(inUse, { ...site, protocols: [...site.protocols] }, (p) => (p === "tcp" ? [{ pid: 812, command: "dnsmasq" }] : []));
    expect(err).toBeInstanceOf(StartupError);
    expect((err as Error).message).toBe(
      "cannot listen on 169.254.96.16:53 for DNS (modules.edgeDNS.listenPort): the address is in use, held by dnsmasq (pid 812, tcp). Stop that process or set modules.edgeDNS.listenPort to a free one.",
    );
  });

  test("an invisible holder is said so, with the command that finds it on the node", () => {
    const err = listenFailure(inUse, { ...site, protocols: [...site.protocols] }, () => []);
    expect((err as Error).message).toContain("held by a process not visible from here (on the node: ss -lntup 'sport = :53')");
  });

  test("permission and address errors name their fix; libp2p's wrapped codes are read from the text; others pass through", () => {
    const s = { ...site, protocols: [...site.protocols] };
    expect((listenFailure(Object.assign(new Error("x"), { code: "EACCES" }), s) as Error).message).toContain("need the capability NET_BIND_SERVICE");
    expect((listenFailure(Object.assign(new Error("x"), { code: "EADDRNOTAVAIL" }), s) as Error).message).toContain("169.254.96.16 is not an address of this node");
    const libp2p = new Error("Transport (@libp2p/tcp) could not listen on any available address", { cause: new Error("listen EADDRINUSE: address already in use 0.0.0.0:20006") });
    expect((listenFailure(libp2p, { ...s, what: "the tunnel", key: "modules.edgeTunnel.listenPort", port: 20006 }, () => []) as Error).message).toStartWith("cannot listen on 169.254.96.16:20006 for the tunnel (modules.edgeTunnel.listenPort): the address is in use");
    const other = new Error("something else");
    expect(listenFailure(other, s)).toBe(other);
  });
});

describe("undo stack", () => {
  test("undoes newest first, and a failing undo is logged without stopping the rest", async () => {
    const log = createMemoryLogger();
    const undo = createUndoStack(log);
    const done: string[] = [];
    undo.add("device", () => void done.push("device"));
    undo.add("chains", async () => {
      await Bun.sleep(1);
      done.push("chains");
    });
    undo.add("listener", () => {
      throw new Error("already closed");
    });
    undo.add("tunnel", () => void done.push("tunnel"));
    await undo.run();
    expect(done).toEqual(["tunnel", "chains", "device"]);
    expect(log.lines.filter((l) => l.includes("WARN")).length).toBe(1);
    expect(log.lines[0]).toContain("step=listener");
    await undo.run(); // empty now: nothing runs twice
    expect(done.length).toBe(3);
  });
});
