// The traffic cases EdgeMesh documents, on one node: a client pod reaches Services by name
// (through the agent's DNS: the pod's resolv.conf points at the bridge IP) and by ClusterIP, with
// endpoints in other pods of the same node. Pod traffic enters through PREROUTING; a process on
// the node itself goes through OUTPUT.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { oneLan, type Pod, type TestNode } from "../support/netns.ts";
import { BUN, createCluster, makeTestCA, serviceYaml, until, type Agent, type Cluster } from "./harness.ts";

const PROBE = join(import.meta.dir, "../support/apps/probe.ts");
const WEB_NAME = "web.default.svc.cluster.local";

describe("e2e: traffic through the agent on one node", () => {
  let c: Cluster;
  let n1: TestNode;
  let client: Pod;
  let ca = "";
  let agent: Agent;

  beforeAll(async () => {
    c = await createCluster(oneLan(1));
    const tls = await makeTestCA(c.dir, [WEB_NAME, "web", "web.default", "10.96.0.10"]);
    ca = tls.ca;
    n1 = c.node("n1");
    const web0 = await n1.addPod("web0", "10.244.1.10");
    client = await n1.addPod("client", "10.244.1.100");
    // startApp reads the TLS files given to createCluster; here they exist only now, so start by hand.
    const app = web0.spawn([BUN, join(import.meta.dir, "../support/apps/server.ts"), "--name", "web0", "--ip", web0.ip, "--http", "8080", "--https", "8443", "--cert", tls.cert, "--key", tls.key, "--tcp", "9000", "--udp", "9001"]);
    await app.waitFor(/ready/);
    c.writeManifest(
      "web.yaml",
      serviceYaml({
        name: "web",
        clusterIP: "10.96.0.10",
        ports: [
          { name: "http", port: 80, targetPort: 8080, nodePort: 30080 },
          { name: "https", port: 443, targetPort: 8443 },
        ],
        endpoints: [{ ip: web0.ip, node: "n1", name: "web0" }],
      }),
    );
    c.writeManifest(
      "echo.yaml",
      serviceYaml({
        name: "echo",
        clusterIP: "10.96.0.20",
        ports: [
          { name: "tcp", port: 7, targetPort: 9000 },
          { name: "udp", port: 7, targetPort: 9001, protocol: "UDP" },
        ],
        endpoints: [{ ip: web0.ip, node: "n1" }],
      }),
    );
    agent = await c.startAgent("n1");
    // The first sync may trail "running" by a moment.
    await until(async () => (await client.exec(["curl", "-s", "--max-time", "1", "http://10.96.0.10/"])).stdout === "web0", 5000);
  }, 60_000);

  afterAll(async () => {
    await c?.destroy();
  });

  const curl = (p: { exec: Pod["exec"] }, ...args: string[]) =>
    p.exec(["curl", "-s", "--max-time", "3", "-w", "\n%{http_code}", ...args]).then((r) => {
      const i = r.stdout.lastIndexOf("\n");
      return { body: r.stdout.slice(0, i), status: r.stdout.slice(i + 1) };
    });

  test("HTTP by ClusterIP: 200 and the endpoint's body", async () => {
    expect(await curl(client, "http://10.96.0.10/")).toEqual({ body: "web0", status: "200" });
  });

  test("HTTP by service name, short and fully qualified, through the agent's DNS", async () => {
    expect(await curl(client, "http://web/")).toEqual({ body: "web0", status: "200" });
    expect(await curl(client, `http://${WEB_NAME}/`)).toEqual({ body: "web0", status: "200" });
    const dig = await client.exec(["dig", "+short", "+time=2", "+tries=1", WEB_NAME]);
    expect(dig.stdout.trim()).toBe("10.96.0.10");
  });

  test("HTTPS passes through untouched: the endpoint's certificate verifies against the test CA", async () => {
    expect(await curl(client, "--cacert", ca, `https://${WEB_NAME}/`)).toEqual({ body: "web0", status: "200" });
  });

  test("TCP echo by ClusterIP and by name", async () => {
    const a = await client.exec(["socat", "-t1", "-", "TCP:10.96.0.20:7"], { stdin: "hello over tcp\n" });
    expect(a.stdout).toBe("hello over tcp\n");
    const b = await client.exec(["socat", "-t1", "-", "TCP:echo.default.svc.cluster.local:7"], { stdin: "by name\n" });
    expect(b.stdout).toBe("by name\n");
  });

  test("WebSocket echo through the service", async () => {
    const r = await client.exec([BUN, PROBE, "ws", "ws://web/ws", "one", "two", "x".repeat(100_000)]);
    expect(JSON.parse(r.stdout)).toMatchObject({ ok: true });
  });

  test("UDP echo keeps datagram boundaries and sizes, by ClusterIP and by name", async () => {
    const sizes = ["1", "512", "1472", "4000", "8000"];
    const r = await client.exec([BUN, PROBE, "udp", "10.96.0.20", "7", ...sizes]);
    expect(JSON.parse(r.stdout)).toEqual({ ok: true, sizes: sizes.map(Number) });
    const byName = await client.exec(["socat", "-t1", "-", "UDP:echo.default.svc.cluster.local:7"], { stdin: "udp by name\n" });
    expect(byName.stdout).toBe("udp by name\n");
  });

  test("a host process on the node (OUTPUT chain) reaches the service", async () => {
    expect(await curl(n1, "http://10.96.0.10/")).toEqual({ body: "web0", status: "200" });
  });

  test("NodePort on the node's address, from a pod and from the node", async () => {
    expect(await curl(client, "http://10.10.0.11:30080/")).toEqual({ body: "web0", status: "200" });
    expect(await curl(n1, "http://10.10.0.11:30080/")).toEqual({ body: "web0", status: "200" });
  });

  test("SIGTERM: the agent removes its chains, its jumps and the device it created, and exits 0", async () => {
    expect((await n1.exec(["ip", "link", "show", "edgemesh0"])).code).toBe(0);
    expect(await agent.proc.kill("SIGTERM")).toBe(0);
    expect((await n1.must(["iptables-save", "-t", "nat"])).stdout).not.toContain("EDGEMESH");
    expect((await n1.exec(["ip", "link", "show", "edgemesh0"])).code).not.toBe(0);
  });
});
