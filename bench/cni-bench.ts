// Edge CNI benchmark in the network-namespace test bed: pod-to-pod by pod IP through the CNI path
// (pod -> node -> edge_tun0 -> agent -> libp2p tunnel -> agent -> edge_tun0 -> node -> pod)
// against pod-to-pod direct routing between the same pods, in the same run. Rounds interleave
// direct and CNI; the median of the per-round ratios is reported.
//
//   lan        two nodes on one LAN; meshCIDRConfig puts each in its own segment, so the agents
//              tunnel (PSK + Noise + yamux over TCP, a direct connection). Direct = a host-gw
//              route between the nodes (as a LAN CNI would).
//   relay      as lan, but the nodes firewall each other's tunnel port: the tunnel goes through a
//              relay node (circuit relay v2).
//   holepunch  two sites behind endpoint-independent NATs and a relay; QUIC without PSK; the
//              agents hole-punch (DCUtR) before measuring. Direct = the pod CIDRs routed through
//              the two NAT routers (masqueraded leaving site A).
//
// During a direct round the tunnel route of the other node's pod CIDR is replaced by the direct
// one (and put back after): the same pods, the same addresses, only the path changes.
// Measures iperf3 bulk, wrk request rate (2 threads, 64 connections, the test app's short "/"
// answer) and the agents' CPU per GB moved in the CNI bulk rounds. With --service (default in
// full mode) also the Service path (ClusterIP -> proxy -> tunnel -> pod) in the CNI rounds, as a
// second reference. Prints one JSON object: `results` (Result rows "<path>.bulk", "<path>.rps",
// "<path>.cpu_s_per_gb", ...; the gate, bench/check.ts, names them cni.*) and `detail`.
//   bun bench/cni-bench.ts                   full: lan, relay, holepunch; 3 rounds x 5 s
//   bun bench/cni-bench.ts --short           CI: lan only, 3 rounds x 2 s (~45 s)
//   bun bench/cni-bench.ts --path relay [--seconds 5] [--rounds 3] [--service]
//   --env NAME=VALUE (repeatable) sets a variable for everything the run starts (the agents; also
//   the pods' programs, in the direct rounds as in the CNI ones), e.g. MIMALLOC_PURGE_DELAY=-1 to
//   try an allocator setting (README, Edge CNI: cost).

import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { nodeYaml } from "../test/support/cni/nodes.ts";
import type { NodeSpec, TopologySpec } from "../test/support/netns.ts";
import { createCluster, serviceYaml, until, type Agent, type AgentOptions, type Cluster } from "../test/e2e/harness.ts";
import { ratioResult, summarize } from "./gate/stats.ts";
import { cpuSecondsOf } from "./macro/procs.ts";
import type { Result } from "./gate/types.ts";

const { values: a } = parseArgs({
  options: {
    path: { type: "string" },
    seconds: { type: "string" },
    rounds: { type: "string" },
    short: { type: "boolean", default: false },
    service: { type: "boolean" },
    env: { type: "string", multiple: true },
  },
});
const extraEnv: Record<string, string> = {};
for (const kv of a.env ?? []) {
  const i = kv.indexOf("=");
  if (i <= 0) throw new Error(`--env: expected NAME=VALUE, got ${kv}`);
  extraEnv[kv.slice(0, i)] = kv.slice(i + 1);
}
// Spawned processes inherit this process's environment (test/support/process.ts).
Object.assign(process.env, extraEnv);
const PATHS = ["lan", "relay", "holepunch"] as const;
type Path = (typeof PATHS)[number];
const chosen = a.path === undefined ? (a.short ? ["lan"] : [...PATHS]) : [a.path];
for (const p of chosen) if (!PATHS.includes(p as Path)) throw new Error(`--path: expected one of ${PATHS.join(", ")}, got ${p}`);
const seconds = Math.min(60, Math.max(1, Number(a.seconds ?? (a.short ? 2 : 5))));
const rounds = Math.min(7, Math.max(1, Number(a.rounds ?? 3)));
const withService = a.service ?? !a.short;
const SERVER = "10.244.2.10";
const CLIENT = "10.244.1.100";
const SVC_IPERF = "10.96.2.1";
const SVC_HTTP = "10.96.2.2";
const TUNNEL_PORT = 20006;

function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

function topology(path: Path): { spec: TopologySpec; nodes: NodeSpec[] } {
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

async function peerOfN1(c: Cluster): Promise<{ relayed: boolean; addrs: string[] } | undefined> {
  const peers = JSON.parse((await c.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/peers"])).stdout) as { nodeName?: string; relayed: boolean; addrs: string[] }[];
  return peers.find((p) => p.nodeName === "n2");
}

async function txFrames(c: Cluster): Promise<{ packets: number; bytes: number }> {
  const text = (await c.node("n1").must(["curl", "-s", "--max-time", "2", "http://127.0.0.1:10551/metrics"])).stdout;
  const get = (name: string) => Number(new RegExp(`^edgemesh_${name}\\{peer="n2"\\} (\\S+)`, "m").exec(text)?.[1] ?? 0);
  return { packets: get("cni_tx_packets_total"), bytes: get("cni_tx_bytes_total") };
}

const r3 = (x: number) => Math.round(x * 1000) / 1000;

async function measure(path: Path): Promise<{ results: Result[]; detail: Record<string, unknown> }> {
  const { spec, nodes } = topology(path);
  const c = await createCluster(spec);
  try {
    for (const n of nodes) c.writeManifest(`node-${n.name}.yaml`, nodeYaml(n));
    const server = await c.node("n2").addPod("server", SERVER);
    const client = await c.node("n1").addPod("client", CLIENT);
    await c.startApp(server);
    const iperfServer = server.spawn(["iperf3", "-s", "--forceflush", "-B", SERVER, "-p", "5201"]);
    await iperfServer.waitFor(/Server listening/);
    if (withService) {
      c.writeManifest("iperf.yaml", serviceYaml({ name: "iperf", clusterIP: SVC_IPERF, ports: [{ name: "iperf", port: 5201, targetPort: 5201 }], endpoints: [{ ip: SERVER, node: "n2" }] }));
      c.writeManifest("web.yaml", serviceYaml({ name: "web", clusterIP: SVC_HTTP, ports: [{ name: "http", port: 80, targetPort: 8080 }], endpoints: [{ ip: SERVER, node: "n2" }] }));
    }

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
      // The direct reference: site A's router sends B's pod CIDR to B's router, and answers
      // (to its masqueraded address) back to n1's pods.
      await c.bed.router("ra").must(["ip", "route", "add", "10.244.2.0/24", "via", "11.0.0.2"]);
      await c.bed.router("ra").must(["ip", "route", "add", "10.244.1.0/24", "via", "192.168.1.11"]);
      await c.bed.router("rb").must(["ip", "route", "add", "10.244.2.0/24", "via", "192.168.2.11"]);
    }
    const ok = await until(async () => (await client.exec(["ping", "-c", "1", "-W", "1", SERVER])).stdout.includes("1 received"), 30_000, 200);
    if (!ok) throw new Error(`${path}: no CNI path to ${SERVER}:\n${agents.map((ag) => ag.proc.output().slice(-2000)).join("\n---\n")}`);
    if (path === "holepunch") {
      // Traffic started on the relay; DCUtR moves the agents (and the CNI streams) to a direct one.
      if (!(await until(async () => (await peerOfN1(c))?.relayed === false, 30_000, 200))) throw new Error(`holepunch: n1 still reaches n2 through the relay`);
      await until(async () => (await client.exec(["ping", "-c", "1", "-W", "1", SERVER])).stdout.includes("1 received"), 10_000, 200);
    } else if (path === "relay" && (await peerOfN1(c))?.relayed !== true) {
      throw new Error(`relay: n1's connection to n2 is not relayed`);
    }
    if (withService && !(await until(async () => (await client.exec(["curl", "-s", "--max-time", "2", `http://${SVC_HTTP}/`])).stdout === "server", 20_000, 200))) {
      throw new Error(`${path}: the Service path does not answer`);
    }

    const routes = {
      async direct() {
        if (path === "holepunch") {
          // Through the NAT routers. A route of another device, not a deleted one: the agent's
          // route resync (30 s) would put a missing tunnel route back in the middle of a round,
          // and the masqueraded flow would stall; another device's route it leaves alone.
          await c.node("n1").must(["ip", "route", "replace", "10.244.2.0/24", "via", "192.168.1.1", "dev", "eth0"]);
          await c.node("n2").must(["ip", "route", "replace", "10.244.1.0/24", "via", "192.168.2.1", "dev", "eth0"]);
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

    // The CPU reference: two socat relays, one per node (as the two agents are), pod -> n1 ->
    // n2 -> pod over the direct route, measured in the direct rounds. The agents' absolute
    // CPU-s/GB follows the machine (4.0 here, 5.1 on a slower build machine for the same code);
    // the ratio to two userspace hops moving the same bytes between the same pods much less.
    const SOCAT_N1 = 15201;
    const SOCAT_N2 = 15202;
    // Not in holepunch: the sites' routers drop connections from outside.
    const socats = path === "holepunch" ? [] : [
      c.node("n2").spawn(["socat", "-b262144", `TCP-LISTEN:${SOCAT_N2},reuseaddr,fork`, `TCP:${SERVER}:5201`]),
      c.node("n1").spawn(["socat", "-b262144", `TCP-LISTEN:${SOCAT_N1},reuseaddr,fork`, `TCP:${nodes.find((n) => n.name === "n2")!.ip}:${SOCAT_N2}`]),
    ];
    const n1ip = nodes.find((n) => n.name === "n1")!.ip;
    // socat forks one child per connection: cpuSecondsOf counts the reaped children too.
    const socatCpuMs = async () => (await Promise.all(socats.map((w) => cpuSecondsOf(w.proc.pid)))).reduce((x, y) => x + y, 0) * 1000;
    const pids = agents.map((ag) => ag.proc.proc.pid);
    const cpuAll = async () => pids.reduce((sum, p) => sum + cpuMs(p), 0);
    /**
     * iperf3 bulk to host:port: Gbit/s and the CPU seconds per GB moved in this round of what
     * `cpu` counts (the agents by default; the socat pair, whose children's CPU reaches the
     * parents only when they are reaped, just after iperf3 closes: `settleMs`).
     */
    const iperf = async (host: string, port = 5201, cpu = cpuAll, settleMs = 0) => {
      const cpu0 = await cpu();
      const r = await client.must(["iperf3", "-c", host, "-p", String(port), "-t", String(seconds), "-J"], { timeoutMs: (seconds + 30) * 1000 });
      const sum = JSON.parse(r.stdout).end?.sum_received;
      if (!sum) throw new Error(`iperf3 to ${host}:${port} failed: ${r.stdout.slice(-400)}`);
      if (settleMs > 0) await Bun.sleep(settleMs);
      return { gbps: r3(sum.bits_per_second / 1e9), cpuSPerGb: r3(((await cpu()) - cpu0) / 1000 / (sum.bytes / 1e9)) };
    };
    const wrkRps = async (url: string) => {
      const r = await client.must(["wrk", "-t2", "-c64", `-d${seconds}s`, url], { timeoutMs: (seconds + 30) * 1000 });
      const errors = r.stdout.match(/Socket errors: .*|Non-2xx or 3xx responses: \d+/g);
      if (errors) console.error(`wrk ${url}: ${errors.join("; ")}`);
      return Math.round(Number(r.stdout.match(/Requests\/sec:\s+([\d.]+)/)?.[1] ?? 0));
    };

    // Warm-up, not counted: the first CNI seconds pay for JIT, stream opens and window growth.
    await client.must(["iperf3", "-c", SERVER, "-p", "5201", "-t", "2"], { timeoutMs: 30_000 });
    await client.must(["wrk", "-t2", "-c64", "-d1s", `http://${SERVER}:8080/`], { timeoutMs: 30_000 });

    const res = { directGbps: [] as number[], cniGbps: [] as number[], serviceGbps: [] as number[], directRps: [] as number[], cniRps: [] as number[], serviceRps: [] as number[], cniCpu: [] as number[], serviceCpu: [] as number[], socatGbps: [] as number[], socatCpu: [] as number[] };
    const bulkFrames = { packets: 0, bytes: 0 };
    for (let i = 0; i < rounds; i++) {
      await routes.direct();
      res.directGbps.push((await iperf(SERVER)).gbps);
      res.directRps.push(await wrkRps(`http://${SERVER}:8080/`));
      if (socats.length > 0) {
        const viaSocat = await iperf(n1ip, SOCAT_N1, socatCpuMs, 200);
        res.socatGbps.push(viaSocat.gbps);
        res.socatCpu.push(viaSocat.cpuSPerGb);
      }
      await routes.cni();
      const f0 = await txFrames(c);
      const cni = await iperf(SERVER);
      const f1 = await txFrames(c);
      bulkFrames.packets += f1.packets - f0.packets;
      bulkFrames.bytes += f1.bytes - f0.bytes;
      res.cniGbps.push(cni.gbps);
      res.cniCpu.push(cni.cpuSPerGb);
      res.cniRps.push(await wrkRps(`http://${SERVER}:8080/`));
      if (withService) {
        const svc = await iperf(SVC_IPERF);
        res.serviceGbps.push(svc.gbps);
        res.serviceCpu.push(svc.cpuSPerGb);
        res.serviceRps.push(await wrkRps(`http://${SVC_HTTP}/`));
      }
    }
    const peer = await peerOfN1(c);
    const frames = await txFrames(c);
    const direct = { bulk: { name: "pod-to-pod direct routing", runs: res.directGbps }, rps: { name: "pod-to-pod direct routing", runs: res.directRps } };
    const results: Result[] = [
      ratioResult(`${path}.bulk`, "Gbit/s", res.cniGbps, direct.bulk),
      ratioResult(`${path}.rps`, "req/s", res.cniRps, direct.rps),
      // Every agent's (and the relay's) CPU seconds per GB moved through the CNI path, per bulk round.
      summarize(`${path}.cpu_s_per_gb`, "s/GB", res.cniCpu),
    ];
    if (socats.length > 0) {
      results.push(
        // Per round: the socat pair's CPU-s/GB / the agents' (higher is better).
        ratioResult(`${path}.cpu_per_gb`, "s/GB", res.cniCpu, { name: "two socat relays", runs: res.socatCpu }, { higherIsBetter: false }),
        summarize(`${path}.socat_bulk`, "Gbit/s", res.socatGbps),
      );
    }
    if (withService) {
      // The Service path (ClusterIP -> proxy -> tunnel -> pod) in the same rounds, for comparison.
      results.push(
        ratioResult(`${path}.service_bulk`, "Gbit/s", res.serviceGbps, direct.bulk),
        ratioResult(`${path}.service_rps`, "req/s", res.serviceRps, direct.rps),
        summarize(`${path}.service_cpu_s_per_gb`, "s/GB", res.serviceCpu),
      );
    }
    return {
      results,
      detail: {
        tunnel_path: peer ? (peer.relayed ? "relayed" : peer.addrs.some((x) => x.includes("quic") && !x.includes("p2p-circuit")) ? "direct-quic" : "direct-tcp") : "unknown",
        // What a packet read from n1's TUN carried on average: over every load, and in the CNI
        // bulk rounds (up to 64 KiB when the offload's superpackets flow).
        avg_tx_frame_bytes: Math.round(frames.bytes / Math.max(1, frames.packets)),
        bulk_avg_tx_frame_bytes: Math.round(bulkFrames.bytes / Math.max(1, bulkFrames.packets)),
        rounds: res,
      },
    };
  } finally {
    await c.destroy();
  }
}

// `results` are the gate's rows (bench/gate/external.ts takes them as they are; check.ts adds the
// "cni." prefix); `detail` is for reading them.
const loadAverage = () => readFileSync("/proc/loadavg", "utf8").split(" ").slice(0, 3).map(Number);
const out = { seconds, rounds, env: extraEnv, loadBefore: loadAverage(), loadAfter: [] as number[], results: [] as Result[], detail: {} as Record<string, unknown> };
for (const p of chosen) {
  console.error(`[cni-bench] ${p}`);
  try {
    const m = await measure(p as Path);
    out.results.push(...m.results);
    out.detail[p] = m.detail;
  } catch (err) {
    // One path failing does not lose the others' numbers; its rows say why (an ERROR in the gate).
    const why = (err as Error).message.split("\n").slice(0, 3).join(" | ");
    console.error(`[cni-bench] ${p} failed: ${(err as Error).stack}`);
    for (const row of ["bulk", "rps", "cpu_s_per_gb", "cpu_per_gb"]) out.results.push({ name: `${p}.${row}`, unit: "", value: null, error: why });
  }
}
out.loadAfter = loadAverage();
console.log(JSON.stringify(out, null, 2));
