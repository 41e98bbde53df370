// Load balancing through the agent: 10,000 requests over 5 endpoints, each on its own TCP
// connection, from a client pod; round robin spreads them, consistent hashing sticks.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { oneLan, type Pod } from "../support/netns.ts";
import { BUN, CLIENT, createCluster, serviceYaml, until, type Cluster } from "./harness.ts";

interface LoadResult {
  ok: number;
  failed: number;
  byBody: Record<string, number>;
  errors: string[];
}

describe("e2e: load balancing over 5 endpoints", () => {
  let c: Cluster;
  let clientA: Pod;
  let clientB: Pod;
  const endpoints = [0, 1, 2, 3, 4].map((i) => ({ ip: `10.244.1.${10 + i}`, node: "n1", name: `web${i}` }));

  beforeAll(async () => {
    c = await createCluster(oneLan(1));
    const n1 = c.node("n1");
    for (const e of endpoints) await c.startApp(await n1.addPod(e.name, e.ip));
    clientA = await n1.addPod("clienta", "10.244.1.100");
    clientB = await n1.addPod("clientb", "10.244.1.101");
    const port = [{ name: "http", port: 80, targetPort: 8080 }];
    c.writeManifest("rr.yaml", serviceYaml({ name: "rr", clusterIP: "10.96.1.1", ports: port, endpoints, lb: "ROUND_ROBIN" }));
    c.writeManifest("hip.yaml", serviceYaml({ name: "hip", clusterIP: "10.96.1.2", ports: port, endpoints, lb: { hashSourceIp: true } }));
    c.writeManifest("hhdr.yaml", serviceYaml({ name: "hhdr", clusterIP: "10.96.1.3", ports: port, endpoints, lb: { hashHeader: "x-user" } }));
    await c.startAgent("n1");
    await until(async () => (await clientA.exec(["curl", "-s", "--max-time", "1", "http://10.96.1.3/"])).stdout.startsWith("web"), 5000);
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  });

  async function load(pod: Pod, host: string, count: number, extra: string[] = []): Promise<LoadResult> {
    const r = await pod.exec([BUN, CLIENT, "--host", host, "--port", "80", "--count", String(count), "--concurrency", "16", ...extra], { timeoutMs: 120_000 });
    return JSON.parse(r.stdout);
  }

  test("round robin: 10,000 requests, none failed, every endpoint gets 15-25%", async () => {
    const r = await load(clientA, "10.96.1.1", 10_000);
    expect(r.failed).toBe(0);
    expect(Object.keys(r.byBody).sort()).toEqual(endpoints.map((e) => e.name));
    for (const n of Object.values(r.byBody)) {
      expect(n).toBeGreaterThanOrEqual(1500);
      expect(n).toBeLessThanOrEqual(2500);
    }
  }, 120_000);

  test("consistent hash on source IP: each client sticks to one endpoint", async () => {
    const a = await load(clientA, "10.96.1.2", 300);
    const b = await load(clientB, "10.96.1.2", 300);
    expect(a.failed + b.failed).toBe(0);
    expect(Object.keys(a.byBody).length).toBe(1);
    expect(Object.keys(b.byBody).length).toBe(1);
  }, 60_000);

  test("consistent hash on a header: each header value sticks, different values spread", async () => {
    const chosen = new Set<string>();
    for (const user of ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"]) {
      const r = await load(clientA, "10.96.1.3", 100, ["--header", `x-user: ${user}`]);
      expect(r.failed).toBe(0);
      expect(Object.keys(r.byBody).length).toBe(1);
      chosen.add(Object.keys(r.byBody)[0]!);
    }
    expect(chosen.size).toBeGreaterThan(1);
  }, 60_000);
});
