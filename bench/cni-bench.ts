// Edge CNI benchmark in the network-namespace test bed: pod-to-pod by pod IP through the CNI path
// (pod -> node -> edge_tun0 -> agent -> libp2p tunnel -> agent -> edge_tun0 -> node -> pod)
// against pod-to-pod direct routing between the same pods, in the same run. Rounds interleave
// direct and CNI; the median of the per-round ratios is reported.
//
//   --path lan (default)  two nodes on one LAN; meshCIDRConfig puts each in its own segment, so
//                         the agents tunnel (PSK + Noise + yamux over TCP, a direct connection).
//                         Direct = a host-gw route between the nodes (as a LAN CNI would).
//   --path relay          as lan, but the nodes firewall each other's tunnel port: the tunnel
//                         goes through a relay node (circuit relay v2).
//   --path holepunch      two sites behind endpoint-independent NATs and a relay; QUIC without
//                         PSK; the agents hole-punch (DCUtR) before measuring. Direct = the pod
//                         CIDRs routed through the two NAT routers (masqueraded one way).
//
// During a direct round the tunnel route of the other node's pod CIDR is replaced by the direct
// one (and put back after): the same pods, the same addresses, only the path changes.
// Reports iperf3 bulk, wrk request rate (64 connections, 1 KiB... the test app's "/" answer),
// both agents' CPU per GB moved (bulk rounds), as one JSON object; with --short, the CI-gate
// sized run (2 rounds x 2 s, lan only).
//   bun bench/cni-bench.ts [--path lan|relay|holepunch] [--seconds 5] [--rounds 3] [--short]

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { nodeYaml } from "../test/support/cni/nodes.ts";
import type { NodeSpec, Pod, TopologySpec } from "../test/support/netns.ts";
import { createCluster, until, type Agent, type AgentOptions, type Cluster } from "../test/e2e/harness.ts";

const { values: a } = parseArgs({
  options: {
    path: { type: "string", default: "lan" },
    seconds: { type: "string" },
    rounds: { type: "string" },
    short: { type: "boolean", default: false },
  },
});
const PATHS = ["lan", "relay", "holepunch"] as const;
const path = PATHS.find((p) => p === a.path);
if (!path) throw new Error(`--path: expected one of ${PATHS.join(", ")}, got ${a.path}`);
const seconds = Math.min(60, Math.max(1, Number(a.seconds ?? (a.short ? 2 : 5))));
const rounds = Math.min(7, Math.max(1, Number(a.rounds ?? (a.short ? 2 : 3))));
const SERVER = "10.244.2.10";
const CLIENT = "10.244.1.100";
const TUNNEL_PORT = 20006;

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function topology(): { spec: TopologySpec; nodes: NodeSpec[] } {
  if (path === "holepunch") {
    const nodes: NodeSpec[] = [
      { name: "relay", lan: "pub", ip: "11.0.0.5", podCidr: "10.244.9.0/24" },
      { name: "n1", lan: "site-a", ip: "192.168.1.11", podCidr: "10.244.1.0/24" },
      { name: "n2", lan: "site-b", ip: "192.168.2.11", podCidr: "10.244.2.0/24" },
    ];
    return {
      nodes,
      spec: {
        lans: [
          { name: "pub", cidr: "11.0.0.0/24" },
          { name: "site-a", cidr: "192.168.1.0/24" },
          { name: "site-b", cidr: "192.168.2.0/24" },
        ],
        routers: [
          { name: "ra", inside: "site-a", insideIP: "192.168.1.1", outside: "pub", outsideIP: "11.0.0.1", firewall: true },
          { name: "rb", inside: "site-b", insideIP: "192.168.2.1", outside: "pub", outsideIP: "11.0.0.2", firewall: true },
        ],
        nodes,
      },
    };
  }
  const nodes: NodeSpec[] = [
    { name: "n1", lan: "lan", ip: "10.10.0.11", podCidr: "10.244.1.0/24" },
    { name: "n2", lan: "lan", ip: "10.10.0.12", podCidr: "10.244.2.0/24" },
  ];
  if (path === "relay") nodes.push({ name: "relay", lan: "lan", ip: "10.10.0.5", podCidr: "10.244.9.0/24" });
  return { nodes, spec: { lans: [{ name: "lan", cidr: "10.10.0.0/24" }], nodes } };
}

const { spec, nodes } = topology();
const c = await createCluster(spec);
try {
  for (const n of nodes) c.writeManifest(`node-${n.name}.yaml`, nodeYaml(n));
  const server = await c.node("n2").addPod("server", SERVER);
  const client = await c.node("n1").addPod("client", CLIENT);
  await c.startApp(server);
  const iperf = server.spawn(["iperf3", "-s", "--forceflush", "-B", SERVER, "-p", "5201"]);
  await iperf.waitFor(/Server listening/);

  const agents: Agent[] = [];
  let opts: AgentOptions;
  if (path === "holepunch") {
    opts = { tunnel: { psk: false, transport: "quic", relayNodes: [{ nodeName: "relay", advertiseAddress: ["11.0.0.5"] }] }, cni: {} };
  } else {
    const psk = join(c.dir, "psk");
    writeFileSync(psk, "edgemesh-cni-bench\n");
    const relayNodes = path === "relay" ? [{ nodeName: "relay", advertiseAddress: ["10.10.0.5"] }] : undefined;
    // One segment per node: the LAN rule alone would (rightly) keep these pods off the tunnel.
    opts = { tunnel: { psk, relayNodes }, cni: { edgeCIDR: nodes.map((n) => n.podCidr) } };
    if (path === "relay") {
      for (const [node, other] of [["n1", "10.10.0.12"], ["n2", "10.10.0.11"]] as const) {
        await c.node(node).must(["iptables", "-I", "INPUT", "-s", other, "-p", "tcp", "--dport", String(TUNNEL_PORT), "-j", "REJECT", "--reject-with", "tcp-reset"]);
        await c.node(node).must(["iptables", "-I", "OUTPUT", "-d", other, "-p", "tcp", "--dport", String(TUNNEL_PORT), "-j", "REJECT", "--reject-with", "tcp-reset"]);
      }
    }
  }
  if (path !== "lan") agents.push(await c.startAgent("relay", opts));
  agents.push(await c.startAgent("n1", opts), await c.startAgent("n2", opts));
  if (path === "holepunch") {
    await Promise.all(agents.slice(1).map((ag) => ag.proc.waitFor(/public QUIC address confirmed/, 20_000)));
    // The direct reference: pod CIDRs routed through the NAT routers (masqueraded leaving site A).
    await c.bed.router("ra").must(["ip", "route", "add", "10.244.2.0/24", "via", "11.0.0.2"]);
    await c.bed.router("rb").must(["ip", "route", "add", "10.244.2.0/24", "via", "192.168.2.11"]);
  }
  const ok = await until(async () => (await client.exec(["ping", "-c", "1", "-W", "1", SERVER])).stdout.includes("1 received"), 30_000, 200);
  if (!ok) throw new Error(`no CNI path to ${SERVER}:\n${agents.map((ag) => ag.proc.output().slice(-2000)).join("\n---\n")}`);
  if (path === "holepunch") {
    // Traffic started on the relay; wait for DCUtR to move it to a direct QUIC connection.
    const direct = await until(async () => peerOfN1("n2", c).then((p) => p?.relayed === false), 30_000, 200);
    if (!direct) throw new Error(`holepunch: n1 still reaches n2 through the relay: ${JSON.stringify(await peerOfN1("n2", c))}`);
  } else if (path === "relay") {
    if ((await peerOfN1("n2", c))?.relayed !== true) throw new Error(`relay: n1's connection to n2 is not relayed`);
  }

  const routes = {
    async direct() {
      if (path === "holepunch") {
        await c.node("n1").must(["ip", "route", "del", "10.244.2.0/24", "dev", "edge_tun0"]);
        await c.node("n2").must(["ip", "route", "del", "10.244.1.0/24", "dev", "edge_tun0"]);
        return;
      }
      await c.node("n1").must(["ip", "route", "replace", "10.244.2.0/24", "via", "10.10.0.12", "dev", "eth0"]);
      await c.node("n2").must(["ip", "route", "replace", "10.244.1.0/24", "via", "10.10.0.11", "dev", "eth0"]);
    },
    async cni() {
      await c.node("n1").must(["ip", "route", "replace", "10.244.2.0/24", "dev", "edge_tun0", "proto", "152"]);
      await c.node("n2").must(["ip", "route", "replace", "10.244.1.0/24", "dev", "edge_tun0", "proto", "152"]);
    },
  };

  const pids = agents.map((ag) => ag.proc.proc.pid);
  const cpuAll = () => pids.reduce((s, p) => s + cpuMs(p), 0);
  const cost = { cpuMs: 0, bytes: 0 };
  const iperfGbps = async (viaCni: boolean) => {
    const cpu0 = cpuAll();
    const r = await client.must(["iperf3", "-c", SERVER, "-p", "5201", "-t", String(seconds), "-J"], { timeoutMs: (seconds + 30) * 1000 });
    const sum = JSON.parse(r.stdout).end?.sum_received;
    if (!sum) throw new Error(`iperf3 failed: ${r.stdout.slice(-400)}`);
    if (viaCni) {
      cost.cpuMs += cpuAll() - cpu0;
      cost.bytes += sum.bytes;
    }
    return Math.round((sum.bits_per_second / 1e9) * 1000) / 1000;
  };
  const wrkRps = async () => {
    const r = await client.must(["wrk", "-t2", "-c64", `-d${seconds}s`, `http://${SERVER}:8080/`], { timeoutMs: (seconds + 30) * 1000 });
    const errors = r.stdout.match(/Socket errors: .*|Non-2xx or 3xx responses: \d+/g);
    if (errors) console.error(`wrk: ${errors.join("; ")}`);
    return Math.round(Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0));
  };

  const res = { directGbps: [] as number[], cniGbps: [] as number[], directRps: [] as number[], cniRps: [] as number[] };
  for (let i = 0; i < rounds; i++) {
    await routes.direct();
    res.directGbps.push(await iperfGbps(false));
    res.directRps.push(await wrkRps());
    await routes.cni();
    res.cniGbps.push(await iperfGbps(true));
    res.cniRps.push(await wrkRps());
  }
  const peer = await peerOfN1("n2", c);
  const frames = await txFrames(c);
  const median = (v: number[]) => [...v].sort((x, y) => x - y)[Math.floor(v.length / 2)]!;
  const r3 = (x: number) => Math.round(x * 1000) / 1000;
  const ratios = (s: number[], d: number[]) => s.map((x, i) => r3(x / d[i]!));
  const out = {
    path,
    seconds,
    rounds,
    loadAverage: readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number),
    tunnelPath: peer ? (peer.relayed ? "relayed" : peer.addrs.some((x) => x.includes("quic")) ? "direct-quic" : "direct-tcp") : "unknown",
    bulk: { directGbps: res.directGbps, cniGbps: res.cniGbps, roundRatios: ratios(res.cniGbps, res.directGbps), ratio: median(ratios(res.cniGbps, res.directGbps)) },
    rps: { direct: res.directRps, cni: res.cniRps, roundRatios: ratios(res.cniRps, res.directRps), ratio: median(ratios(res.cniRps, res.directRps)) },
    // Both agents' (and the relay's) CPU seconds per GB moved through the CNI path in the bulk rounds.
    cpuSecondsPerGB: r3(cost.cpuMs / 1000 / (cost.bytes / 1e9)),
    // What a frame read from the TUN carried on average (n1 -> n2): ~64 KiB when offload works.
    avgTxFrameBytes: Math.round(frames.bytes / Math.max(1, frames.packets)),
  };
  console.log(JSON.stringify(out, null, 2));
} finally {
  await c.destroy();
}

async function txFrames(cluster: Cluster): Promise<{ packets: number; bytes: number }> {
  const text = (await cluster.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
  const get = (name: string) => Number(new RegExp(`^edgemesh_${name}\\{peer="n2"\\} (\\S+)`, "m").exec(text)?.[1] ?? 0);
  return { packets: get("cni_tx_packets_total"), bytes: get("cni_tx_bytes_total") };
}

async function peerOfN1(node: string, cluster: Cluster): Promise<{ relayed: boolean; addrs: string[] } | undefined> {
  const peers = JSON.parse((await cluster.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/peers"])).stdout) as { nodeName?: string; relayed: boolean; addrs: string[] }[];
  return peers.find((p) => p.nodeName === node);
}

export type { Pod };
