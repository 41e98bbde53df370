import { describe, expect, test } from "bun:test";
import { EMPTY_TABLE } from "../../src/control/index.ts";
import { JUMPS, OWN_CHAINS, renderRules, type ListenerAddress } from "../../src/iptables/index.ts";
import { parseNat, trace, type Chains, type Packet } from "../support/testbed/iptables-trace.ts";
import { listenersFor, tableOf } from "../support/testbed/tables.ts";

const BRIDGE = "169.254.96.16";
const NODE_IP = "10.10.0.11";
const local = (ip: string) => ip === BRIDGE || ip === NODE_IP || ip.startsWith("127.");

/** The rendered chains plus the jumps ensureJumps() puts into the built-in chains. */
function installed(text: string): Chains {
  const chains = parseNat(text);
  chains.set("PREROUTING", []);
  chains.set("OUTPUT", []);
  for (const j of JUMPS) chains.get(j.from)!.push(["-m", "comment", "--comment", j.comment, "-j", j.to]);
  return chains;
}

function send(chains: Chains, p: Partial<Packet> & { dst: string; dport: number }) {
  return trace(chains, { hook: "PREROUTING", proto: "tcp", ...p }, local).dnat;
}

const table = tableOf(3, [
  { name: "web", port: 80, clusterIPs: ["10.96.0.10"] },
  { name: "dns-like", port: 53, protocol: "UDP", clusterIPs: ["10.96.0.20"] },
  { name: "np", port: 8080, clusterIPs: ["10.96.0.30"], nodePort: 30080 },
  { name: "ext", port: 443, clusterIPs: ["10.96.0.40"], externalIPs: ["192.0.2.50"] },
  { ns: "other", name: "dual", port: 80, clusterIPs: ["10.96.0.50", "fd00::50"] },
]);
const listeners = listenersFor(table);
const at = (key: string) => `${listeners.get(key)!.host}:${listeners.get(key)!.port}`;

describe("renderRules: where packets go", () => {
  const chains = installed(renderRules({ table, listeners }));

  test("a pod's TCP packet to a cluster IP is sent to that port's listener", () => {
    expect(send(chains, { dst: "10.96.0.10", dport: 80 })).toBe(at("default/web:80/TCP"));
  });

  test("a host process (OUTPUT) is sent to the same listener", () => {
    expect(send(chains, { hook: "OUTPUT", dst: "10.96.0.10", dport: 80 })).toBe(at("default/web:80/TCP"));
  });

  test("UDP service ports match UDP only", () => {
    expect(send(chains, { dst: "10.96.0.20", dport: 53, proto: "udp" })).toBe(at("default/dns-like:53/UDP"));
    expect(send(chains, { dst: "10.96.0.20", dport: 53, proto: "tcp" })).toBeNull();
  });

  test("a different port or protocol on a cluster IP is left alone", () => {
    expect(send(chains, { dst: "10.96.0.10", dport: 81 })).toBeNull();
    expect(send(chains, { dst: "10.96.0.10", dport: 80, proto: "udp" })).toBeNull();
  });

  test("unrelated traffic passes through untouched", () => {
    expect(send(chains, { dst: "8.8.8.8", dport: 80 })).toBeNull();
    expect(send(chains, { hook: "OUTPUT", dst: "10.244.1.5", dport: 8080 })).toBeNull();
  });

  test("a NodePort is caught on every local address, from pods and from the host", () => {
    const want = at("default/np:8080/TCP");
    expect(send(chains, { dst: NODE_IP, dport: 30080 })).toBe(want);
    expect(send(chains, { hook: "OUTPUT", dst: "127.0.0.1", dport: 30080 })).toBe(want);
    expect(send(chains, { dst: "10.96.0.30", dport: 8080 })).toBe(want);
  });

  test("a NodePort number on a non-local address is not caught", () => {
    expect(send(chains, { dst: "10.10.0.99", dport: 30080 })).toBeNull();
  });

  test("our own listener address is never caught by a NodePort rule", () => {
    expect(send(chains, { hook: "OUTPUT", dst: BRIDGE, dport: 30080 })).toBeNull();
  });

  test("external IPs are intercepted like cluster IPs", () => {
    expect(send(chains, { dst: "192.0.2.50", dport: 443 })).toBe(at("default/ext:443/TCP"));
    expect(send(chains, { hook: "OUTPUT", dst: "192.0.2.50", dport: 443 })).toBe(at("default/ext:443/TCP"));
  });

  test("IPv6 cluster IPs are left to ip6tables; the IPv4 one works", () => {
    const text = renderRules({ table, listeners });
    expect(text).not.toContain("fd00::50");
    expect(send(chains, { dst: "10.96.0.50", dport: 80 })).toBe(at("other/dual:80/TCP"));
  });

  test("the deciding rule names the service port", () => {
    const v = trace(chains, { hook: "PREROUTING", proto: "tcp", dst: "10.96.0.10", dport: 80 }, local);
    expect(v.comment).toBe("default/web:80/TCP cluster IP");
    expect(v.path).toEqual(["PREROUTING", "EDGEMESH-PORTALS-CONTAINER"]);
  });
});

describe("renderRules: shape", () => {
  test("is deterministic: listener map order and port order do not change the text", () => {
    const a = renderRules({ table, listeners });
    const reversed = new Map([...listeners].reverse());
    const shuffled = tableOf(3, [
      { ns: "other", name: "dual", port: 80, clusterIPs: ["10.96.0.50", "fd00::50"] },
      { name: "ext", port: 443, clusterIPs: ["10.96.0.40"], externalIPs: ["192.0.2.50"] },
      { name: "np", port: 8080, clusterIPs: ["10.96.0.30"], nodePort: 30080 },
      { name: "dns-like", port: 53, protocol: "UDP", clusterIPs: ["10.96.0.20"] },
      { name: "web", port: 80, clusterIPs: ["10.96.0.10"] },
    ]);
    expect(renderRules({ table: shuffled, listeners: reversed })).toBe(a);
    expect(renderRules({ table, listeners })).toBe(a);
  });

  test("declares (and so flushes) exactly our four chains and nothing else", () => {
    const text = renderRules({ table, listeners });
    const declared = text.split("\n").filter((l) => l.startsWith(":")).map((l) => l.slice(1).split(" ")[0]);
    expect(declared).toEqual([...OWN_CHAINS]);
    const targets = text.split("\n").filter((l) => l.startsWith("-A ")).map((l) => l.split(" ")[1]);
    expect(new Set(targets)).toEqual(new Set(OWN_CHAINS));
    expect(text.startsWith("*nat\n")).toBe(true);
    expect(text.trimEnd().endsWith("COMMIT")).toBe(true);
  });

  test("an empty table renders chains with no DNAT, and nothing is intercepted", () => {
    const text = renderRules({ table: EMPTY_TABLE, listeners: new Map() });
    expect(text).not.toContain("DNAT");
    const chains = installed(text);
    expect(send(chains, { dst: "10.96.0.10", dport: 80 })).toBeNull();
    expect(send(chains, { dst: NODE_IP, dport: 30080 })).toBeNull();
  });

  test("a service port without a listener gets no rule", () => {
    const partial = new Map([...listeners].filter(([k]) => k !== "default/web:80/TCP"));
    const chains = installed(renderRules({ table, listeners: partial }));
    expect(send(chains, { dst: "10.96.0.10", dport: 80 })).toBeNull();
    expect(send(chains, { dst: "10.96.0.30", dport: 8080 })).toBe(at("default/np:8080/TCP"));
  });

  test("two services claiming one external IP and port: the first key wins, one rule only", () => {
    const t = tableOf(1, [
      { name: "b", port: 80, externalIPs: ["192.0.2.9"] },
      { name: "a", port: 80, externalIPs: ["192.0.2.9"] },
    ]);
    const l = listenersFor(t);
    const text = renderRules({ table: t, listeners: l });
    expect(text.split("\n").filter((x) => x.includes("192.0.2.9")).length).toBe(2); // CONTAINER + HOST
    expect(send(installed(text), { dst: "192.0.2.9", dport: 80 })).toBe(`${BRIDGE}:${l.get("default/a:80/TCP")!.port}`);
  });

  test("cluster DNS IPs can be sent to our DNS server over UDP and TCP", () => {
    const chains = installed(renderRules({ table, listeners, dns: { clusterIPs: ["10.96.0.2"], host: BRIDGE, port: 53 } }));
    expect(send(chains, { dst: "10.96.0.2", dport: 53, proto: "udp" })).toBe(`${BRIDGE}:53`);
    expect(send(chains, { dst: "10.96.0.2", dport: 53, proto: "tcp" })).toBe(`${BRIDGE}:53`);
  });

  test("listeners with unusable addresses are skipped rather than rendered", () => {
    const bad = new Map<string, ListenerAddress>([["default/web:80/TCP", { host: "::1", port: 4000, protocol: "TCP" }]]);
    const text = renderRules({ table, listeners: bad });
    expect(text).not.toContain("DNAT");
  });

  test("10,000 service ports render and sampled ones are reachable", () => {
    const specs = Array.from({ length: 10_000 }, (_, i) => ({ name: `s${i}`, port: 80, clusterIPs: [`10.${96 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`] }));
    const big = tableOf(9, specs);
    const l = listenersFor(big, BRIDGE, 20000);
    const text = renderRules({ table: big, listeners: l });
    const chains = installed(text);
    for (const i of [0, 4321, 9999]) {
      const sp = big.byKey[`default/s${i}:80/TCP`]!;
      expect(send(chains, { dst: sp.clusterIPs[0]!, dport: 80 })).toBe(`${BRIDGE}:${l.get(sp.key)!.port}`);
    }
  });
});
