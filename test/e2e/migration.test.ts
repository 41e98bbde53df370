// Switching a node from EdgeMesh (issue 15). n1 is a node whose EdgeMesh agent was killed: its
// userspace-proxier chains still DNAT cluster IPs to ports on 169.254.96.16 that nobody listens on,
// its edgemesh0 device is still there, and kube-proxy runs in iptables mode beside it. A service we
// do not proxy (filtered by label) is therefore broken. Our agent starts with the documented
// command: the leftovers are gone, kube-proxy's rules are intact, the filtered service works again
// through kube-proxy, ours through us; at stop the adopted device stays. n2, a clean node, gets a
// device of ours that goes away at stop. Run with both iptables backends.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { oneLan, type Pod } from "../support/netns.ts";
import type { Watched } from "../support/process.ts";
import { edgemeshLeftoverCommands, kubeProxyCommands, LEFTOVER_SERVICES } from "../support/testbed/edgemesh-leftovers.ts";
import { APP, BUN, createCluster, serviceYaml, until, type Cluster } from "./harness.ts";

const BRIDGE = "169.254.96.16";
const EDGEMESH = /KUBE-PORTALS-|KUBE-NODEPORT-(CONTAINER|HOST|NON-LOCAL)/;

const LEGACY = `apiVersion: v1
kind: Service
metadata:
  name: legacy
  namespace: default
  labels: { service.edgemesh.kubeedge.io/service-proxy-name: "" }
spec: { type: ClusterIP, clusterIP: 10.96.0.30, ports: [{ name: http, port: 80, protocol: TCP, targetPort: 8081 }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: legacy-1, namespace: default, labels: { kubernetes.io/service-name: legacy } }
addressType: IPv4
ports: [{ name: http, port: 8081, protocol: TCP }]
endpoints: [{ addresses: ["10.10.0.11"], conditions: { ready: true }, nodeName: n1 }]
`;

for (const backend of ["nft", "legacy"] as const) {
  describe(`e2e: taking over a node from EdgeMesh (iptables-${backend})`, () => {
    let c: Cluster;
    let client: Pod;
    let agent: Watched;
    let before: string[];
    const bin = `iptables-${backend}`;
    const save = async () => (await c.node("n1").must([`${bin}-save`])).stdout;
    const lines = (text: string) => text.split("\n").filter((l) => l.startsWith("-A ") || l.startsWith(":")).map((l) => l.replace(/ \[\d+:\d+\]$/, ""));
    const get = async (url: string) => (await client.exec(["curl", "-s", "--max-time", "3", url])).stdout;

    beforeAll(async () => {
      c = await createCluster(oneLan(2));
      const n1 = c.node("n1");
      // kube-proxy (iptables mode) sends the legacy service to a host-network app on n1.
      for (const args of kubeProxyCommands("10.244.0.0/16", [
        { name: "default/legacy:http", clusterIP: "10.96.0.30", port: 80, endpoint: "10.10.0.11:8081", svcChain: "KUBE-SVC-LEGACYHTTP4XQ2Z7K", sepChain: "KUBE-SEP-LEGACYEP5M3TQ9WB" },
      ])) {
        await n1.must([bin, ...args]);
      }
      // What the killed EdgeMesh agent left: its chains and its device with the bridge IP.
      for (const args of edgemeshLeftoverCommands(BRIDGE, LEFTOVER_SERVICES)) await n1.must([bin, ...args]);
      await n1.must(["ip", "link", "add", "edgemesh0", "type", "bridge"]);
      await n1.must(["ip", "addr", "add", `${BRIDGE}/32`, "dev", "edgemesh0"]);
      await n1.must(["ip", "link", "set", "edgemesh0", "up"]);
      const host = n1.spawn([BUN, APP, "--name", "legacy-host", "--ip", "10.10.0.11", "--http", "8081"]);
      await host.waitFor(/ready/, 10_000);
      await c.startApp(await n1.addPod("web", "10.244.1.10"), "web");
      client = await n1.addPod("client", "10.244.1.100");
      c.writeManifest("legacy.yaml", LEGACY);
      c.writeManifest("web.yaml", serviceYaml({ name: "web", clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: [{ ip: "10.244.1.10", node: "n1" }] }));
      before = lines(await save());
    }, 60_000);

    afterAll(async () => {
      await c?.destroy();
    });

    test("before: EdgeMesh's dead portal catches the service kube-proxy should serve", async () => {
      expect(before.filter((l) => EDGEMESH.test(l)).length).toBe(22);
      expect(await get("http://10.96.0.30/")).toBe("");
    });

    test("our agent starts, removes the leftovers once and says so; kube-proxy's rules all stay", async () => {
      agent = (await c.startAgent("n1")).proc;
      const removed = agent.output().split("\n").filter((l) => l.includes("removed the iptables rules"));
      expect(removed.length).toBe(1);
      expect(removed[0]).toContain("nat=KUBE-NODEPORT-CONTAINER,KUBE-NODEPORT-HOST,KUBE-PORTALS-CONTAINER,KUBE-PORTALS-HOST");
      expect(removed[0]).toContain("filter=KUBE-NODEPORT-NON-LOCAL");
      expect(agent.output()).toContain("using the existing bridge device");
      // Our rules go in right after (the first sync is asynchronous).
      expect(await until(async () => (await save()).includes("-j EDGEMESH-PORTALS-CONTAINER"), 5000)).toBe(true);
      const after = lines(await save());
      expect(after.filter((l) => EDGEMESH.test(l))).toEqual([]);
      const missing = before.filter((l) => !EDGEMESH.test(l) && !after.includes(l));
      expect(missing).toEqual([]);
    }, 30_000);

    test("traffic: the filtered service through kube-proxy, ours through our agent", async () => {
      expect(await until(async () => (await get("http://10.96.0.10/")) === "web", 10_000)).toBe(true);
      expect(await get("http://10.96.0.30/")).toBe("legacy-host");
      const routes = await c.routes("n1");
      expect(routes.services.map((s) => s.name)).toEqual(["web"]);
    });

    test("a clean node gets a device of its own and no cleanup", async () => {
      const n2 = (await c.startAgent("n2")).proc;
      expect(n2.output()).not.toContain("removed the iptables rules");
      expect(n2.output()).not.toContain("using the existing bridge device");
      expect((await c.node("n2").exec(["ip", "link", "show", "dev", "edgemesh0"])).code).toBe(0);
      expect(await n2.kill("SIGTERM")).toBe(0);
      expect((await c.node("n2").exec(["ip", "link", "show", "dev", "edgemesh0"])).code).not.toBe(0);
    }, 30_000);

    test("at stop the adopted device stays, our chains go, kube-proxy's stay", async () => {
      expect(await agent.kill("SIGTERM")).toBe(0);
      expect((await c.node("n1").must(["ip", "-o", "addr", "show", "dev", "edgemesh0"])).stdout).toContain(`${BRIDGE}/32`);
      const after = lines(await save());
      expect(after.some((l) => l.includes("EDGEMESH-"))).toBe(false);
      expect(before.filter((l) => !EDGEMESH.test(l) && !after.includes(l))).toEqual([]);
      expect(await get("http://10.96.0.30/")).toBe("legacy-host");
    }, 30_000);
  });
}
