// A node whose existing rules (kube-proxy's, the CNI's) live in iptables-legacy: the agent must
// put its rules there too, or they would not run before kube-proxy's.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { oneLan, type Pod, type TestNode } from "../support/netns.ts";
import { createCluster, serviceYaml, until, type Agent, type Cluster } from "./harness.ts";

describe("e2e: agent on an iptables-legacy node", () => {
  let c: Cluster;
  let n1: TestNode;
  let client: Pod;
  let agent: Agent;

  beforeAll(async () => {
    c = await createCluster(oneLan(1));
    n1 = c.node("n1");
    await c.startApp(await n1.addPod("web0", "10.244.1.10"));
    client = await n1.addPod("client", "10.244.1.100");
    // "kube-proxy" in legacy, sending the service somewhere nothing answers.
    await n1.must(["iptables-legacy", "-t", "nat", "-N", "KUBE-SERVICES"]);
    await n1.must(["iptables-legacy", "-t", "nat", "-A", "PREROUTING", "-j", "KUBE-SERVICES"]);
    await n1.must(["iptables-legacy", "-t", "nat", "-A", "KUBE-SERVICES", "-d", "10.96.0.10/32", "-p", "tcp", "--dport", "80", "-j", "DNAT", "--to-destination", "10.244.9.9:80"]);
    c.writeManifest("web.yaml", serviceYaml({ name: "web", clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: [{ ip: "10.244.1.10", node: "n1" }] }));
    agent = await c.startAgent("n1");
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  });

  test("the agent says it uses legacy and its rules are there, first, not in nft", async () => {
    expect(agent.proc.output()).toContain("iptables=legacy");
    // The chains are restored first and the jumps inserted right after: wait for the jump itself.
    const firstPrerouting = async () =>
      (await n1.must(["iptables-legacy-save", "-t", "nat"])).stdout.split("\n").find((l) => l.startsWith("-A PREROUTING")) ?? "";
    expect(await until(async () => (await firstPrerouting()).includes("EDGEMESH-PORTALS-CONTAINER"), 5000)).toBe(true);
    const legacy = (await n1.must(["iptables-legacy-save", "-t", "nat"])).stdout.split("\n");
    expect(legacy.find((l) => l.startsWith("-A PREROUTING"))).toContain("EDGEMESH-PORTALS-CONTAINER");
    expect((await n1.must(["iptables-nft-save", "-t", "nat"])).stdout).not.toContain("EDGEMESH");
  });

  test("pod traffic to the service reaches the endpoint through the agent, not kube-proxy's target", async () => {
    const r = await client.exec(["curl", "-s", "--max-time", "2", "http://10.96.0.10/"]);
    expect(r.stdout).toBe("web0");
  });

  test("SIGTERM leaves kube-proxy's legacy rules in place", async () => {
    expect(await agent.proc.kill("SIGTERM")).toBe(0);
    const legacy = (await n1.must(["iptables-legacy-save", "-t", "nat"])).stdout;
    expect(legacy).not.toContain("EDGEMESH");
    expect(legacy).toContain("-A PREROUTING -j KUBE-SERVICES");
  });
});
