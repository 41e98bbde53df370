// Two nodes on one LAN, each running its own agent, with a host-gw style pod network (pod CIDRs
// routed between the nodes) so cross-node endpoints are reachable without the tunnel. Each
// agent intercepts only on its own node, both balance over endpoints on both nodes, and one
// agent going away leaves the other node untouched.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { oneLan, type Pod } from "../support/netns.ts";
import { BUN, CLIENT, createCluster, serviceYaml, until, type Agent, type Cluster } from "./harness.ts";

describe("e2e: two nodes, one agent each", () => {
  let c: Cluster;
  const clients: Pod[] = [];
  const agents: Agent[] = [];
  const endpoints = [
    { ip: "10.244.1.10", node: "n1", name: "a-on-n1" },
    { ip: "10.244.2.10", node: "n2", name: "b-on-n2" },
  ];

  beforeAll(async () => {
    c = await createCluster(oneLan(2, { podRoutes: true }));
    for (const e of endpoints) await c.startApp(await c.node(e.node).addPod(e.name, e.ip), e.name);
    clients.push(await c.node("n1").addPod("client", "10.244.1.100"), await c.node("n2").addPod("client", "10.244.2.100"));
    c.writeManifest("web.yaml", serviceYaml({ name: "web", clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints }));
    agents.push(await c.startAgent("n1"), await c.startAgent("n2"));
    for (const client of clients) {
      await until(async () => (await client.exec(["curl", "-s", "--max-time", "1", "http://web/"])).stdout !== "", 5000);
    }
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  });

  const load = async (pod: Pod, count: number) =>
    JSON.parse((await pod.exec([BUN, CLIENT, "--host", "10.96.0.10", "--count", String(count), "--concurrency", "8"], { timeoutMs: 60_000 })).stdout) as {
      ok: number;
      failed: number;
      byBody: Record<string, number>;
    };

  test("clients on both nodes reach endpoints on both nodes, round robin", async () => {
    for (const client of clients) {
      const r = await load(client, 400);
      expect(r.failed).toBe(0);
      expect(r.byBody["a-on-n1"]).toBe(200);
      expect(r.byBody["b-on-n2"]).toBe(200);
    }
  });

  test("each node has its own rules: one jump per built-in chain on each", async () => {
    for (const node of ["n1", "n2"]) {
      const rules = (await c.node(node).must(["iptables-save", "-t", "nat"])).stdout.split("\n");
      expect(rules.filter((l) => l.startsWith("-A PREROUTING") && l.includes("EDGEMESH")).length).toBe(1);
      expect(rules.filter((l) => l.includes("-d 10.96.0.10/32") && l.includes("PORTALS-CONTAINER")).length).toBe(1);
    }
  });

  test("stopping n1's agent removes n1's rules only; n2's clients keep working", async () => {
    expect(await agents[0]!.proc.kill("SIGTERM")).toBe(0);
    expect((await c.node("n1").must(["iptables-save", "-t", "nat"])).stdout).not.toContain("EDGEMESH");
    expect((await c.node("n2").must(["iptables-save", "-t", "nat"])).stdout).toContain("EDGEMESH-PORTALS-CONTAINER");
    const r = await load(clients[1]!, 100);
    expect(r.failed).toBe(0);
    expect(r.ok).toBe(100);
  });
});
