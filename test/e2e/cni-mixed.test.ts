// Edge CNI in a mixed mesh: two agents with TUN segmentation offload (virtio headers, 64 KiB TCP
// superpackets between them) and one without (EDGEMESH_CNI_OFFLOAD=0: plain IP packets, what
// EdgeMesh's own agent speaks). Three nodes on one LAN, each in its own meshCIDRConfig segment so
// pod traffic takes the tunnel (PSK, TCP):
//
//   n1 (10.244.1.0/24, pod a)  offload      n2 (10.244.2.0/24, pod b)  offload
//   n3 (10.244.3.0/24, pod c)  no offload
//
// a -> b: superpackets cross whole and the receiving kernel takes them with their virtio header.
// a -> c: n1's kernel still hands its agent superpackets; the agent cuts them into MTU-sized
// segments with their own checksums (src/hotpath/cni/offload.ts), which c's kernel must accept.
// c -> a: plain packets into an offloading device (a zero virtio header in front).

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { oneLan, type Pod } from "../support/netns.ts";
import { nodeYaml } from "../support/cni/nodes.ts";
import { createCluster, until, type Agent, type Cluster } from "./harness.ts";

const TCP_CHECK = join(import.meta.dir, "../support/cni/tcp-check.ts");
const UDP_CHECK = join(import.meta.dir, "../support/cni/udp-check.ts");
const BED = oneLan(3);
const POD = { n1: "10.244.1.10", n2: "10.244.2.10", n3: "10.244.3.10" };

/** A counter (or labelled series) from an agent's /metrics; 0 when absent. */
async function metric(c: Cluster, node: string, series: string): Promise<number> {
  const text = (await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
  const escaped = series.replace(/[{}"\\]/g, (m) => `\\${m}`);
  return Number(new RegExp(`^edgemesh_${escaped} (\\S+)`, "m").exec(text)?.[1] ?? 0);
}

/** Bytes and packets `node` wrote into its TUN from other agents' streams, over every peer label
 * (an inbound peer is "unknown" when its node name is not published: the tests run one flow at a time). */
async function rx(c: Cluster, node: string): Promise<{ bytes: number; packets: number }> {
  const text = (await c.node(node).must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
  const sum = (name: string) => [...text.matchAll(new RegExp(`^edgemesh_${name}\\{[^}]*\\} (\\S+)`, "gm"))].reduce((a, m) => a + Number(m[1]), 0);
  return { bytes: sum("cni_rx_bytes_total"), packets: sum("cni_rx_packets_total") };
}

describe("e2e: Edge CNI, agents with and without TUN offload in one mesh", () => {
  let c: Cluster;
  const pods: Record<string, Pod> = {};
  const agents = new Map<string, Agent>();
  const logs = () => [...agents].map(([n, ag]) => `--- ${n}:\n${ag.proc.output().slice(-2500)}`).join("\n");

  beforeAll(async () => {
    c = await createCluster(BED);
    writeFileSync(join(c.dir, "psk"), "edgemesh-e2e-cni-mixed\n");
    for (const n of BED.nodes) c.writeManifest(`node-${n.name}.yaml`, nodeYaml(n));
    const opts = { tunnel: { psk: join(c.dir, "psk") }, cni: { edgeCIDR: BED.nodes.map((n) => n.podCidr) } };
    for (const [node, ip] of Object.entries(POD)) pods[node] = await c.node(node).addPod(`p-${node}`, ip);
    for (const p of Object.values(pods)) await c.startApp(p);
    // Spawned processes inherit this process's environment: only n3's agent sees the switch.
    process.env.EDGEMESH_CNI_OFFLOAD = "0";
    try {
      agents.set("n3", await c.startAgent("n3", opts));
    } finally {
      delete process.env.EDGEMESH_CNI_OFFLOAD;
    }
    for (const n of ["n1", "n2"]) agents.set(n, await c.startAgent(n, opts));
  }, 120_000);

  afterAll(async () => {
    await c?.destroy();
  }, 60_000);

  test("each agent says whether its device offloads", async () => {
    for (const [n, want] of [["n1", "true"], ["n2", "true"], ["n3", "false"]] as const) {
      const ok = await until(async () => new RegExp(`Edge CNI on.*offload[=:" ]+${want}`).test(agents.get(n)!.proc.output()), 10_000, 100);
      if (!ok) console.log(logs());
      expect(ok).toBe(true);
    }
  }, 40_000);

  test("ping by pod IP between every pair", async () => {
    const ping = (from: string, to: string) => pods[from]!.exec(["ping", "-c", "2", "-i", "0.2", "-W", "2", to]);
    const first = await until(async () => (await ping("n1", POD.n3)).stdout.includes("2 received"), 30_000, 200);
    if (!first) console.log(logs());
    expect(first).toBe(true);
    for (const [from, to] of [["n1", "n2"], ["n2", "n1"], ["n3", "n1"], ["n2", "n3"], ["n3", "n2"]] as const) {
      const ok = await until(async () => (await ping(from, POD[to])).stdout.includes("2 received"), 15_000, 200);
      expect({ from, to, ok }).toEqual({ from, to, ok: true });
    }
  }, 120_000);

  const bulk = async (from: string, to: keyof typeof POD, port: number) => {
    const sink = pods[to]!.spawn([process.execPath, TCP_CHECK, "--listen", POD[to], "--port", String(port)]);
    await sink.waitFor(/listening/);
    const send = await pods[from]!.must([process.execPath, TCP_CHECK, "--connect", POD[to], "--port", String(port), "--mib", "100"], { timeoutMs: 120_000 });
    const sent = JSON.parse(send.stdout.trim().split("\n").at(-1)!);
    const got = JSON.parse((await sink.waitFor(/\{"bytes".*\}/, 30_000))[0]);
    console.log(`cni mixed e2e: 100 MiB ${from} -> ${to} in ${sent.ms} ms (${((100 * 8 * 1.048576) / (sent.ms / 1000)).toFixed(0)} Mbit/s)`);
    expect(got.bytes).toBe(100 * 1024 * 1024);
    expect(got.sha256).toBe(sent.sha256);
  };

  test("TCP between the offloading agents: 100 MB checksummed, carried as superpackets", async () => {
    const before = await rx(c, "n2");
    await bulk("n1", "n2", 9101);
    const after = await rx(c, "n2");
    // Frames larger than the MTU reached n2's device: segmentation was left to its kernel.
    expect(after.bytes - before.bytes).toBeGreaterThan(100 * 1024 * 1024);
    expect((after.bytes - before.bytes) / (after.packets - before.packets)).toBeGreaterThan(4000);
  }, 150_000);

  test("TCP from an offloading agent to one without: 100 MB checksummed, cut into MTU-sized packets", async () => {
    const before = await rx(c, "n3");
    await bulk("n1", "n3", 9102);
    const after = await rx(c, "n3");
    expect(after.bytes - before.bytes).toBeGreaterThan(100 * 1024 * 1024);
    const avg = (after.bytes - before.bytes) / (after.packets - before.packets);
    expect(avg).toBeLessThanOrEqual(1500);
    expect(avg).toBeGreaterThan(1000);
  }, 150_000);

  test("TCP from the agent without offload to an offloading one: 100 MB checksummed", async () => {
    const before = await rx(c, "n1");
    await bulk("n3", "n1", 9103);
    const after = await rx(c, "n1");
    expect(after.bytes - before.bytes).toBeGreaterThan(100 * 1024 * 1024);
    expect((after.bytes - before.bytes) / (after.packets - before.packets)).toBeLessThanOrEqual(1500);
  }, 150_000);

  test("UDP: datagram sizes are kept on every pair (echoed back, so both directions)", async () => {
    const sizes = [1, 64, 512, 1400, 1472, 1473, 4000, 9000, 16000];
    for (const [from, to] of [["n1", "n2"], ["n1", "n3"], ["n3", "n2"]] as const) {
      const r = await pods[from]!.must([process.execPath, UDP_CHECK, "--host", POD[to], "--port", "9001", "--sizes", sizes.join(",")], { timeoutMs: 15_000 });
      const res = JSON.parse(r.stdout.trim());
      expect({ from, to, ...res }).toMatchObject({ from, to, sent: sizes.length, ok: sizes.length, bad: [], lost: [] });
    }
  }, 60_000);

  test("ICMP at the MTU edge: a 1500-byte DF probe crosses whole on every pair, 1501 bytes is refused", async () => {
    for (const [from, to] of [["n1", "n2"], ["n1", "n3"], ["n3", "n1"]] as const) {
      const r = await pods[from]!.exec(["ping", "-c", "2", "-i", "0.2", "-W", "2", "-M", "do", "-s", "1472", POD[to]]);
      expect({ from, to, out: r.stdout.includes("2 received") && r.stdout.includes(`1480 bytes from ${POD[to]}`) }).toEqual({ from, to, out: true });
      const big = await pods[from]!.exec(["ping", "-c", "1", "-W", "1", "-M", "do", "-s", "1473", POD[to]]);
      expect(big.code).not.toBe(0);
    }
  }, 40_000);

  test("nothing was dropped as malformed, oversized or refused by a device on the way", async () => {
    for (const n of ["n1", "n2", "n3"]) {
      expect({ n, malformed: await metric(c, n, 'cni_dropped_packets_total{reason="malformed"}') }).toEqual({ n, malformed: 0 });
      expect({ n, writeError: await metric(c, n, 'cni_dropped_packets_total{reason="write_error"}') }).toEqual({ n, writeError: 0 });
      expect({ n, oversized: await metric(c, n, 'cni_dropped_packets_total{reason="oversized"}') }).toEqual({ n, oversized: 0 });
    }
  }, 20_000);
});
