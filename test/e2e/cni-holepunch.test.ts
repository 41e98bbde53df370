// Edge CNI after a hole punch: two sites behind endpoint-independent NATs (Linux MASQUERADE keeps
// source ports) with firewalls, a relay on a "public" LAN (11.0.0.0/24: libp2p would never punch
// to documentation ranges). QUIC without a PSK, as hole punching needs. Pod traffic starts on the
// relay; once DCUtR has connected the agents directly, the CNI streams move to that connection
// and the relay no longer carries pod bytes (read from the relay node's eth0 counter).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { twoSites, type Pod } from "../support/netns.ts";
import { nodeYaml } from "../support/cni/nodes.ts";
import { createCluster, peersOf, until, type Agent, type Cluster } from "./harness.ts";

const TCP_CHECK = join(import.meta.dir, "../support/cni/tcp-check.ts");
const UDP_CHECK = join(import.meta.dir, "../support/cni/udp-check.ts");

const BED = twoSites({ pub: "11.0.0", nat: { firewall: true } }, { nodes: [{ name: "relay", lan: "pub", ip: "11.0.0.5", podCidr: "10.244.9.0/24" }] });

describe("e2e: Edge CNI after the hole punch (QUIC, endpoint-independent NATs)", () => {
  let c: Cluster;
  let a: Pod;
  let b: Pod;
  const agents: Record<string, Agent> = {};
  const relayRx = async () => Number((await c.node("relay").must(["cat", "/sys/class/net/eth0/statistics/rx_bytes"])).stdout.trim());
  const n2FromN1 = async () => (await peersOf(c, "n1")).find((p) => p.nodeName === "n2");
  const logs = () => Object.entries(agents).map(([n, ag]) => `--- ${n}:\n${ag.proc.output().slice(-2500)}`).join("\n");

  beforeAll(async () => {
    c = await createCluster(BED);
    for (const n of BED.nodes) c.writeManifest(`node-${n.name}.yaml`, nodeYaml(n));
    a = await c.node("n1").addPod("a", "10.244.1.10");
    b = await c.node("n2").addPod("b", "10.244.2.10");
    await c.startApp(b);
    const opts = { tunnel: { psk: false as const, transport: "quic" as const, relayNodes: [{ nodeName: "relay", advertiseAddress: ["11.0.0.5"] }] }, cni: {} };
    agents.relay = await c.startAgent("relay", opts);
    agents.n2 = await c.startAgent("n2", opts);
    agents.n1 = await c.startAgent("n1", opts);
    await Promise.all([agents.n1.proc.waitFor(/public QUIC address confirmed/, 20_000), agents.n2.proc.waitFor(/public QUIC address confirmed/, 20_000)]);
  }, 90_000);

  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  test("pods ping each other by pod IP; the first packets cross the relay", async () => {
    const rx0 = await relayRx();
    const ok = await until(async () => (await a.exec(["ping", "-c", "1", "-W", "1", "10.244.2.10"])).stdout.includes("1 received"), 20_000, 100);
    if (!ok) console.log(logs());
    expect(ok).toBe(true);
    expect(await relayRx()).toBeGreaterThan(rx0);
    expect((await b.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.244.1.10"])).stdout).toContain("3 received");
  }, 30_000);

  test("the agents are then connected directly, and the CNI streams follow", async () => {
    const direct = await until(async () => (await n2FromN1())?.relayed === false, 30_000, 200);
    console.log(`cni holepunch e2e: n1's view of n2 ${JSON.stringify(await n2FromN1())}`);
    if (!direct) console.log(logs());
    expect(direct).toBe(true);
    // Pings keep flowing while the streams move over.
    expect((await a.exec(["ping", "-c", "5", "-i", "0.2", "-W", "2", "10.244.2.10"])).stdout).toContain(" 0% packet loss");
    // The streams opened over the relay were closed when the direct connection came (and reopened on it).
    const moved = async (n: string) => Number(/^edgemesh_tunnel_cni_streams_moved_total (\d+)/m.exec((await c.node(n).must(["curl", "-s", "http://127.0.0.1:10551/metrics"])).stdout)?.[1] ?? 0);
    expect((await moved("n1")) + (await moved("n2"))).toBeGreaterThanOrEqual(1);
  }, 40_000);

  test("TCP: 100 MB checksummed pod to pod, and the relay carries none of it", async () => {
    const sink = b.spawn([process.execPath, TCP_CHECK, "--listen", "10.244.2.10", "--port", "9100"]);
    await sink.waitFor(/listening/);
    const rx0 = await relayRx();
    const send = await a.must([process.execPath, TCP_CHECK, "--connect", "10.244.2.10", "--port", "9100", "--mib", "100"], { timeoutMs: 120_000 });
    const sent = JSON.parse(send.stdout.trim().split("\n").at(-1)!);
    const got = JSON.parse((await sink.waitFor(/\{"bytes".*\}/, 30_000))[0]);
    const relayed = (await relayRx()) - rx0;
    console.log(`cni holepunch e2e: 100 MiB a -> b in ${sent.ms} ms (${((100 * 8 * 1.048576) / (sent.ms / 1000)).toFixed(0)} Mbit/s), relay rx grew ${relayed} bytes`);
    expect(got.bytes).toBe(100 * 1024 * 1024);
    expect(got.sha256).toBe(sent.sha256);
    expect(relayed).toBeLessThan(2 * 1024 * 1024);
  }, 150_000);

  test("UDP: datagram sizes are kept on the direct path", async () => {
    const sizes = [1, 200, 1472, 3000, 12000];
    const r = await a.must([process.execPath, UDP_CHECK, "--host", "10.244.2.10", "--port", "9001", "--sizes", sizes.join(",")], { timeoutMs: 15_000 });
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ sent: sizes.length, ok: sizes.length, bad: [], lost: [] });
  }, 20_000);

  test("the direct path outlives the relay", async () => {
    await agents.relay!.proc.kill("SIGKILL");
    expect((await a.exec(["ping", "-c", "3", "-i", "0.2", "-W", "2", "10.244.2.10"])).stdout).toContain("3 received");
  }, 20_000);
});
