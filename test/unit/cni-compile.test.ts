import { describe, expect, test } from "bun:test";
import { compileCni, createCompiler, parseIPv4, type CniCompileOptions } from "../../src/control/compile/index.ts";
import type { KubeObject } from "../../src/control/objects.ts";
import { createObjectStore } from "../../src/control/store.ts";
import { cniPeerIndex, type CniTable } from "../../src/control/table.ts";

function node(name: string, podCIDR: string | string[] | undefined, internalIP?: string): KubeObject {
  const spec: Record<string, unknown> = {};
  if (Array.isArray(podCIDR)) {
    spec.podCIDR = podCIDR[0];
    spec.podCIDRs = podCIDR;
  } else if (podCIDR !== undefined) spec.podCIDR = podCIDR;
  return {
    apiVersion: "v1",
    kind: "Node",
    metadata: { name },
    spec,
    status: internalIP ? { addresses: [{ type: "Hostname", address: name }, { type: "InternalIP", address: internalIP }] } : {},
  };
}

function nodes(...list: KubeObject[]): Map<string, KubeObject> {
  return new Map(list.map((n) => [`/${n.metadata.name}`, n]));
}

const opts = (o: Partial<CniCompileOptions> = {}): CniCompileOptions => ({
  nodeName: "n1",
  cloudCIDR: [],
  edgeCIDR: [],
  localSubnets: ["192.168.1.11/24"],
  ...o,
});

function compiled(map: Map<string, KubeObject>, o: Partial<CniCompileOptions> = {}): { t: CniTable; warnings: string[] } {
  const warnings: string[] = [];
  return { t: compileCni(map, opts(o), (w) => warnings.push(w)), warnings };
}

const peerOf = (t: CniTable, ip: string): string | undefined => t.peers[cniPeerIndex(t.lookup, parseIPv4(ip)!)]?.node;

describe("Edge CNI compile: which remote pod CIDRs go through the tunnel", () => {
  test("without segments, a node on another LAN is tunneled and one on this node's subnet is not", () => {
    const { t } = compiled(
      nodes(node("n1", "10.244.1.0/24", "192.168.1.11"), node("n2", "10.244.2.0/24", "192.168.2.11"), node("n3", "10.244.3.0/24", "192.168.1.12")),
    );
    expect(t.localPodCIDRs).toEqual(["10.244.1.0/24"]);
    expect(t.peers).toEqual([{ node: "n2", podCIDRs: ["10.244.2.0/24"], reason: "lan" }]);
    expect(t.direct).toEqual([{ node: "n3", podCIDRs: ["10.244.3.0/24"], reason: "lan" }]);
    expect(t.routes).toEqual([{ cidr: "10.244.2.0/24", node: "n2" }]);
  });

  test("a node without an InternalIP cannot be shown to share the LAN: tunneled", () => {
    const { t } = compiled(nodes(node("n1", "10.244.1.0/24", "192.168.1.11"), node("edge-x", "10.244.7.0/24")));
    expect(t.routes).toEqual([{ cidr: "10.244.7.0/24", node: "edge-x" }]);
  });

  test("segments decide when they cover either side: same segment direct, any other segment tunneled", () => {
    const { t } = compiled(
      nodes(
        node("n1", "10.244.64.0/24", "192.168.1.11"),
        node("n2", "10.244.65.0/24", "192.168.1.12"), // same site segment, also same LAN
        node("n3", "10.244.66.0/24", "192.168.1.13"), // another site, though on our subnet
        node("cloud-1", "10.244.1.0/24", "10.0.0.5"),
        node("stray", "172.16.0.0/24", "192.168.1.14"), // in no segment while we are in one
      ),
      { cloudCIDR: ["10.244.0.0/18"], edgeCIDR: ["10.244.64.0/23", "10.244.66.0/23"] },
    );
    expect(t.localSegment).toBe("10.244.64.0/23");
    expect(t.direct.map((d) => d.node)).toEqual(["n2"]);
    expect(t.peers.map((p) => [p.node, p.reason])).toEqual([
      ["cloud-1", "segment"],
      ["n3", "segment"],
      ["stray", "segment"],
    ]);
  });

  test("the most specific segment counts: a site carved out of a wider range is its own segment", () => {
    const { t } = compiled(nodes(node("n1", "10.244.64.0/24"), node("n2", "10.244.65.0/24"), node("n3", "10.244.70.0/24")), {
      edgeCIDR: ["10.244.64.0/18", "10.244.64.0/23"],
    });
    expect(t.localSegment).toBe("10.244.64.0/23");
    expect(t.direct.map((d) => d.node)).toEqual(["n2"]);
    expect(t.peers.map((p) => p.node)).toEqual(["n3"]);
  });

  test("spec.podCIDRs wins over spec.podCIDR; IPv6 ranges stay off the tunnel", () => {
    const { t } = compiled(nodes(node("n1", "10.244.1.0/24"), node("n2", ["10.244.2.0/24", "fd00:2::/64"], "192.168.2.11")));
    expect(t.peers).toEqual([{ node: "n2", podCIDRs: ["10.244.2.0/24"], reason: "lan" }]);
  });

  test("host bits in a pod CIDR are cleared, as Go's ParseCIDR does", () => {
    const { t } = compiled(nodes(node("n1", "10.244.1.0/24"), node("n2", "10.244.2.7/24", "192.168.9.9")));
    expect(t.routes).toEqual([{ cidr: "10.244.2.0/24", node: "n2" }]);
  });

  test("a remote CIDR overlapping our own, or claimed twice, is warned about and routed once at most", () => {
    const { t, warnings } = compiled(
      nodes(node("n1", "10.244.1.0/24"), node("bad", "10.244.0.0/16", "192.168.9.1"), node("a", "10.244.5.0/24", "192.168.9.2"), node("b", "10.244.5.0/24", "192.168.9.3")),
    );
    expect(t.routes).toEqual([{ cidr: "10.244.5.0/24", node: "a" }]);
    expect(warnings.some((w) => w.includes("bad") && w.includes("overlaps"))).toBe(true);
    expect(warnings.some((w) => w.includes("claimed by Nodes a and b"))).toBe(true);
  });

  test("our own Node without a pod CIDR is reported (others cannot route to our pods)", () => {
    const { t, warnings } = compiled(nodes(node("n2", "10.244.2.0/24")));
    expect(t.localPodCIDRs).toEqual([]);
    expect(t.routes).toEqual([{ cidr: "10.244.2.0/24", node: "n2" }]);
    expect(warnings[0]).toContain("Node n1 has no IPv4 spec.podCIDR");
  });

  test("a malformed pod CIDR is ignored with a warning, the node's good ones still count", () => {
    const { t, warnings } = compiled(nodes(node("n1", "10.244.1.0/24"), node("n2", ["10.244.300.0/24", "10.244.2.0/24"], "192.168.9.9")));
    expect(t.routes).toEqual([{ cidr: "10.244.2.0/24", node: "n2" }]);
    expect(warnings.some((w) => w.includes('"10.244.300.0/24"'))).toBe(true);
  });

  test("the table is deeply frozen", () => {
    const { t } = compiled(nodes(node("n1", "10.244.1.0/24"), node("n2", "10.244.2.0/24", "192.168.2.1")));
    expect(Object.isFrozen(t)).toBe(true);
    expect(Object.isFrozen(t.peers[0]!.podCIDRs)).toBe(true);
    expect(Object.isFrozen(t.routes[0])).toBe(true);
  });
});

describe("Edge CNI lookup: a destination IP to its peer", () => {
  const { t } = compiled(
    nodes(node("n1", "10.244.1.0/24"), node("wide", "10.245.0.0/16", "192.168.9.1"), node("narrow", "10.245.7.0/24", "192.168.9.2"), node("n2", "10.244.2.0/24", "192.168.9.3")),
  );

  test("finds the node owning the pod IP", () => {
    expect(peerOf(t, "10.244.2.10")).toBe("n2");
    expect(peerOf(t, "10.244.2.255")).toBe("n2");
  });
  test("the most specific prefix wins", () => {
    expect(peerOf(t, "10.245.7.1")).toBe("narrow");
    expect(peerOf(t, "10.245.8.1")).toBe("wide");
  });
  test("local, direct and unknown destinations miss (-1)", () => {
    expect(cniPeerIndex(t.lookup, parseIPv4("10.244.1.5")!)).toBe(-1);
    expect(cniPeerIndex(t.lookup, parseIPv4("8.8.8.8")!)).toBe(-1);
  });
  test("a /0 pod CIDR overlaps our own range: refused rather than swallowing our pods", () => {
    const { t: all } = compiled(nodes(node("n1", "10.244.1.0/24"), node("n2", "10.244.2.0/24", "192.168.9.3"), node("x", "0.0.0.0/0", "192.168.9.4")));
    expect(all.peers.map((p) => p.node)).toEqual(["n2"]);
  });
});

describe("Edge CNI in the compiled RouteTable", () => {
  const svcOptions = { serviceFilterMode: "FilterIfLabelExists" as const };

  test("no cni options: no cni in the table", () => {
    const store = createObjectStore();
    store.upsert("Node", node("n1", "10.244.1.0/24"));
    expect(createCompiler(svcOptions).compile(store.snapshot(), 1, 0).cni).toBeUndefined();
  });

  test("a Node change recompiles the CNI part and reuses the services; an unrelated change reuses the CNI part", () => {
    const store = createObjectStore();
    store.upsert("Node", node("n1", "10.244.1.0/24", "192.168.1.11"));
    store.upsert("Service", { kind: "Service", metadata: { name: "web", namespace: "default" }, spec: { clusterIP: "10.96.0.10", ports: [{ port: 80 }] } });
    const c = createCompiler({ ...svcOptions, cni: opts() });
    const t1 = c.compile(store.snapshot(), 1, 0);
    expect(t1.cni!.routes).toEqual([]);
    store.upsert("Node", node("n2", "10.244.2.0/24", "192.168.2.11"));
    const t2 = c.compile(store.snapshot(), 2, 0);
    expect(t2.cni!.routes).toEqual([{ cidr: "10.244.2.0/24", node: "n2" }]);
    expect(t2.ports).toBe(t1.ports);
    store.upsert("Secret", { kind: "Secret", metadata: { name: "s", namespace: "default" } });
    const t3 = c.compile(store.snapshot(), 3, 0);
    expect(t3.cni).toBe(t2.cni!);
    store.remove("Node", "/n2");
    expect(c.compile(store.snapshot(), 4, 0).cni!.routes).toEqual([]);
  });
});
