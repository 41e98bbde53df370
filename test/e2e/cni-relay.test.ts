// Edge CNI across two NATed sites through a relay: pods reach each other by pod IP.
//
//   pub 10.0.0.0/24:        relay (10.244.9.0/24)
//   site-a 192.168.1.0/24:  n1 (10.244.1.0/24, pod a), n3 (10.244.3.0/24, pod c)   behind NAT ra
//   site-b 192.168.2.0/24:  n2 (10.244.2.0/24, pod b), n4 (10.244.4.0/24, pod d)   behind NAT rb
//
// Inside each site a host-gw style route carries pod CIDRs between nodes (podRoutes), so n1 and
// n3 reach each other's pods directly; across sites nothing routes pod IPs, and the sites cannot
// open connections to each other: n1's agent reaches n2's only through the relay (PSK, TCP). No
// meshCIDRConfig: the LAN rule (a node's InternalIP on one of our subnets) decides.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { twoSites, type Pod } from "../support/netns.ts";
import { nodeYaml } from "../support/cni/nodes.ts";
import { APP_PORTS, createCluster, serviceYaml, until, type Agent, type AgentOptions, type Cluster } from "./harness.ts";

const TCP_CHECK = join(import.meta.dir, "../support/cni/tcp-check.ts");
const UDP_CHECK = join(import.meta.dir, "../support/cni/udp-check.ts");

const BED = twoSites(
  {},
  {
    nodes: [
      { name: "relay", lan: "pub", ip: "10.0.0.5", podCidr: "10.244.9.0/24" },
      { name: "n3", lan: "site-a", ip: "192.168.1.13", podCidr: "10.244.3.0/24" },
      { name: "n4", lan: "site-b", ip: "192.168.2.14", podCidr: "10.244.4.0/24" },
    ],
    podRoutes: true,
  },
);

/** A counter (or labelled series) from an agent's /metrics; 0 when absent. */
async function metric(c: Cluster, node: string, series: string): Promise<number> {
  const text = (await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
  const escaped = series.replace(/[{}"\\]/g, (m) => `\\${m}`);
  return Number(new RegExp(`^edgemesh_${escaped} (\\S+)`, "m").exec(text)?.[1] ?? 0);
}

async function tunRoutes(c: Cluster, node: string): Promise<string[]> {
  const r = await c.node(node).exec(["ip", "-4", "route", "show", "dev", "edge_tun0"]);
  return r.code === 0 ? r.stdout.split("\n").filter(Boolean).map((l) => l.split(" ")[0]!) : [];
}

describe("e2e: Edge CNI, two NATed sites through a relay", () => {
  let c: Cluster;
  let a: Pod;
  let b: Pod;
  let cc: Pod;
  let d: Pod;
  const agents = new Map<string, Agent>();
  let opts: AgentOptions;

  const start = async (node: string) => {
    const agent = await c.startAgent(node, opts);
    agents.set(node, agent);
    return agent;
  };
  const logs = () => [...agents].map(([n, ag]) => `--- ${n}:\n${ag.proc.output().slice(-2500)}`).join("\n");
  const ping = (from: Pod, to: string, extra: string[] = []) => from.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", ...extra, to]);

  beforeAll(async () => {
    c = await createCluster(BED);
    writeFileSync(join(c.dir, "psk"), "edgemesh-e2e-cni-secret\n");
    for (const n of BED.nodes) c.writeManifest(`node-${n.name}.yaml`, nodeYaml(n));
    opts = { tunnel: { psk: join(c.dir, "psk"), relayNodes: [{ nodeName: "relay", advertiseAddress: ["10.0.0.5"] }] }, cni: {} };
    a = await c.node("n1").addPod("a", "10.244.1.10");
    cc = await c.node("n3").addPod("c", "10.244.3.10");
    d = await c.node("n4").addPod("d", "10.244.4.10");
    b = await c.node("n2").addPod("b", "10.244.2.10");
    for (const p of [b, cc, d]) await c.startApp(p);
    await start("relay");
    await Promise.all(["n1", "n2", "n3", "n4"].map(start));
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  test("routes: other sites' pod CIDRs into edge_tun0, the same site's stay on eth0", async () => {
    const ok = await until(async () => (await tunRoutes(c, "n1")).length === 3, 10_000);
    if (!ok) console.log(logs());
    expect(await tunRoutes(c, "n1")).toEqual(["10.244.2.0/24", "10.244.4.0/24", "10.244.9.0/24"]);
    expect((await c.node("n1").must(["ip", "route", "get", "10.244.3.10"])).stdout).toContain("dev eth0");
    expect((await c.node("n1").must(["ip", "link", "show", "edge_tun0"])).stdout).toContain("mtu 1500");
  });

  test("the sites cannot reach each other's pods or nodes without the tunnel", async () => {
    expect((await c.node("n1").exec(["curl", "-s", "--max-time", "1", "http://192.168.2.11:20006/"])).code).not.toBe(0);
  });

  test("ping by pod IP both ways, through the relay", async () => {
    const first = await until(async () => (await ping(a, "10.244.2.10")).stdout.includes(" 0% packet loss"), 20_000, 200);
    if (!first) console.log(logs());
    expect(first).toBe(true);
    expect((await ping(b, "10.244.1.10")).stdout).toContain("3 received");
    const peers = JSON.parse((await c.node("n1").must(["curl", "-s", "http://127.0.0.1:10551/peers"])).stdout) as { nodeName?: string; relayed: boolean }[];
    expect(peers.find((p) => p.nodeName === "n2")?.relayed).toBe(true);
    expect(await metric(c, "n1", 'cni_tx_packets_total{peer="n2"}')).toBeGreaterThanOrEqual(3);
    expect(await metric(c, "n1", 'cni_rx_packets_total{peer="n2"}')).toBeGreaterThanOrEqual(3);
  }, 30_000);

  test("the MTU edge: a 1500-byte DF probe crosses whole; nothing is fragmented on the way", async () => {
    const r = await a.exec(["ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", "10.244.2.10"]);
    expect(r.stdout).toContain("2 received");
    expect(r.stdout).toContain("1480 bytes from 10.244.2.10");
    const big = await a.exec(["ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1473", "10.244.2.10"]);
    expect(big.code).not.toBe(0);
  }, 20_000);

  test("TCP: 100 MB checksummed from a pod on site A to a pod on site B", async () => {
    const sink = b.spawn([process.execPath, TCP_CHECK, "--listen", "10.244.2.10", "--port", "9100"]);
    await sink.waitFor(/listening/);
    const frags0 = await fragmentsCreated(c, ["n1", "n2"]);
    const send = await a.must([process.execPath, TCP_CHECK, "--connect", "10.244.2.10", "--port", "9100", "--mib", "100"], { timeoutMs: 120_000 });
    const sent = JSON.parse(send.stdout.trim().split("\n").at(-1)!);
    const got = JSON.parse((await sink.waitFor(/\{"bytes".*\}/, 30_000))[0]);
    console.log(`cni relay e2e: 100 MiB a -> b in ${sent.ms} ms (${((100 * 8 * 1.048576) / (sent.ms / 1000)).toFixed(0)} Mbit/s)`);
    expect(got.bytes).toBe(100 * 1024 * 1024);
    expect(got.sha256).toBe(sent.sha256);
    // Full-size TCP segments crossed without IP fragmentation anywhere on the path.
    expect(await fragmentsCreated(c, ["n1", "n2"])).toBe(frags0);
  }, 150_000);

  test("UDP: datagrams keep their sizes, up to 16 KB (fragmented by the pod, reassembled by the pod)", async () => {
    const sizes = [1, 64, 512, 1400, 1472, 1473, 4000, 9000, 16000];
    const r = await a.must([process.execPath, UDP_CHECK, "--host", "10.244.2.10", "--port", "9001", "--sizes", sizes.join(",")], { timeoutMs: 15_000 });
    const res = JSON.parse(r.stdout.trim());
    expect(res).toMatchObject({ sent: sizes.length, ok: sizes.length, bad: [], lost: [] });
    expect(res.okSizes).toEqual([...sizes].sort((x, y) => x - y));
  }, 20_000);

  test("a pod on the same site is reached directly: no packet goes into the TUN", async () => {
    const noRoute = await metric(c, "n1", 'cni_dropped_packets_total{reason="no_route"}');
    const tun0 = Number((await c.node("n1").must(["cat", "/sys/class/net/edge_tun0/statistics/tx_packets"])).stdout);
    expect((await a.exec(["ping", "-c", "20", "-i", "0.05", "-W", "2", "10.244.3.10"])).stdout).toContain("20 received");
    // Had the 20 requests gone into the TUN, the device would count them and the pump would
    // drop them (n3 is no tunnel peer).
    expect(Number((await c.node("n1").must(["cat", "/sys/class/net/edge_tun0/statistics/tx_packets"])).stdout) - tun0).toBeLessThan(5);
    expect(await metric(c, "n1", 'cni_dropped_packets_total{reason="no_route"}')).toBe(noRoute);
    expect((await c.node("n1").must(["ip", "route", "get", "10.244.3.10", "from", "10.244.1.10", "iif", "cni0"])).stdout).toContain("dev eth0");
  });

  test("ClusterIP traffic still goes through the proxy beside the CNI path", async () => {
    c.writeManifest(
      "web.yaml",
      serviceYaml({ name: "web", clusterIP: "10.96.0.10", ports: [{ name: "http", port: 80, targetPort: APP_PORTS.http }], endpoints: [{ ip: "10.244.2.10", node: "n2", name: "b" }] }),
    );
    const opened = await metric(c, "n1", "tunnel_proxy_streams_opened_total");
    const ok = await until(async () => (await a.exec(["curl", "-s", "--max-time", "2", "http://10.96.0.10/"])).stdout === "b", 20_000, 200);
    expect(ok).toBe(true);
    // The proxy carried it (a proxy stream from n1's agent), not the CNI path.
    expect(await metric(c, "n1", "tunnel_proxy_streams_opened_total")).toBeGreaterThan(opened);
  }, 30_000);

  test("a peer that disappears: its packets are dropped and counted, its routes stay, other peers are not slowed", async () => {
    expect((await ping(a, "10.244.4.10")).stdout).toContain("3 received");
    await agents.get("n2")!.proc.kill("SIGKILL");
    // A flood towards the dead peer's pod while pinging a pod on the other (live) node of site B.
    const flood = a.exec(["ping", "-f", "-c", "500", "-w", "5", "10.244.2.10"], { timeoutMs: 30_000 });
    const live = await a.exec(["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.244.4.10"]);
    await flood;
    expect(live.stdout).toContain("5 received");
    const rtt = Number(/= [\d.]+\/([\d.]+)\//.exec(live.stdout)?.[1] ?? 1e9);
    expect(rtt).toBeLessThan(200);
    const dropped = await until(async () => (await metric(c, "n1", 'cni_peer_dropped_packets_total{peer="n2"}')) > 0, 10_000);
    expect(dropped).toBe(true);
    expect(await tunRoutes(c, "n1")).toContain("10.244.2.0/24");
  }, 60_000);

  test("the peer comes back: traffic resumes without touching n1", async () => {
    await start("n2");
    const ok = await until(async () => (await a.exec(["ping", "-c", "1", "-W", "1", "10.244.2.10"])).stdout.includes("1 received"), 45_000, 500);
    if (!ok) console.log(logs());
    expect(ok).toBe(true);
  }, 60_000);

  test("a deleted Node loses its route", async () => {
    c.removeManifest("node-n4.yaml");
    expect(await until(async () => !(await tunRoutes(c, "n1")).includes("10.244.4.0/24"), 10_000)).toBe(true);
    c.writeManifest("node-n4.yaml", nodeYaml(BED.nodes.find((n) => n.name === "n4")!));
    expect(await until(async () => (await tunRoutes(c, "n1")).includes("10.244.4.0/24"), 10_000)).toBe(true);
  }, 30_000);

  test("SIGTERM removes the TUN device and its routes; a restart brings them back", async () => {
    expect(await agents.get("n1")!.proc.kill("SIGTERM")).toBe(0);
    expect((await c.node("n1").exec(["ip", "link", "show", "edge_tun0"])).code).not.toBe(0);
    expect((await c.node("n1").must(["ip", "-4", "route", "show", "proto", "152"])).stdout.trim()).toBe("");
    await start("n1");
    expect(await until(async () => (await ping(a, "10.244.2.10")).stdout.includes("3 received"), 30_000, 300)).toBe(true);
  }, 60_000);

  test("kill -9, then restart: the routes converge with no duplicates", async () => {
    await agents.get("n1")!.proc.kill("SIGKILL");
    expect((await c.node("n1").exec(["ip", "link", "show", "edge_tun0"])).code).not.toBe(0);
    await start("n1");
    expect(await until(async () => (await tunRoutes(c, "n1")).length === 3, 10_000)).toBe(true);
    const all = (await c.node("n1").must(["ip", "-4", "route", "show"])).stdout.split("\n").filter((l) => l.startsWith("10.244."));
    expect(all.length).toBe(new Set(all.map((l) => l.split(" ")[0])).size);
    expect(await until(async () => (await ping(a, "10.244.2.10")).stdout.includes("3 received"), 30_000, 300)).toBe(true);
  }, 60_000);
});

/** IP fragments the nodes' own stacks created (Ip: FragCreates), summed. */
async function fragmentsCreated(c: Cluster, nodes: string[]): Promise<number> {
  let sum = 0;
  for (const n of nodes) {
    const text = (await c.node(n).must(["cat", "/proc/net/snmp"])).stdout.split("\n").filter((l) => l.startsWith("Ip:"));
    const names = text[0]!.split(/\s+/);
    const values = text[1]!.split(/\s+/);
    sum += Number(values[names.indexOf("FragCreates")]);
  }
  return sum;
}
